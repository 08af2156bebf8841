"""Delivery through the providers' notifiers to real local receivers, exactly once per recipient."""

from __future__ import annotations

import json

import pytest

from iam_audit.alerting import alerts
from tests.bi import results

A, B = results.A, results.B
ROUTES = {A: ["webhook", "email:sec-a@example.com"]}


def run(conn, run_id: str, routes: alerts.Routes | None = None, day=results.D3):
    rules, errors = alerts.load_rules(alerts.rule_dirs(None))
    assert errors == []
    routes = routes or alerts.Routes(mapping=ROUTES, default=["slack"])
    return alerts.run_alerts(conn, rules, routes, str(day), run_id, "http://airflow.example:8080")


def ledger(conn) -> list[tuple]:
    return conn.execute("SELECT rule, channel, recipient, outcome, sent_run_id, attempts, last_error "
                        "FROM aws_policy_alert_ledger ORDER BY id").fetchall()


def test_each_alert_reaches_each_recipient_once(history_db, channels):
    http, smtp = channels
    first = run(history_db, "scheduled__d3")
    assert first.failures == [] and first.rule_errors == []
    hooks, slack = http.bodies("/hook"), http.bodies("/slack/T000/B000/slack-token-secret")
    # A's three newly failing findings: one webhook POST and one e-mail each; B's one goes to the default
    immediate = [b for b in hooks if b["type"] == "alert"]
    assert sorted(b["resource_id"] for b in immediate) == [results.user(A, n) for n in ("carol", "erin", "frank")]
    alice = immediate[0]
    assert alice["severity"] == "high" and alice["controls"] == "cis_v3.0.0 1.10"
    assert alice["account_id"] == A and alice["failing_since"] == str(results.D3)
    assert alice["links"]["compliance"] == f"http://airflow.example:8080/compliance/?account={A}&severity=high"
    assert alice["links"]["run"] == "http://airflow.example:8080/dags/aws_iam_cis/runs/scheduled__d3"
    assert alice["dedup_key"].startswith("newly_failing|console_users_mfa ")
    # the baselines are digests: one per recipient, grouped by account
    digests = [b for b in hooks if b["type"] == "digest"]
    assert len(digests) == 1 and [i["rule"] for i in digests[0]["items"]] == ["baseline"]
    assert "5 open findings" in digests[0]["items"][0]["reason"]
    assert len(slack) == 2 and "gina" in slack[0]["text"] and "digest" in slack[1]["text"]
    mails = [(to, m["Subject"]) for to, m in smtp.messages]
    assert len(mails) == 4 and all(to == ["sec-a@example.com"] for to, _ in mails)
    assert sum("digest" in s for _, s in mails) == 1
    rows = ledger(history_db)
    assert len(rows) == 3 * 2 + 1 + 3 and {r[3] for r in rows} == {"sent"} and {r[4] for r in rows} == {"scheduled__d3"}
    assert alerts.summary_line(first.summary()).startswith("Alerts: 10 sent (baseline/email 1, ")
    assert first.summary()["sent"] == {"baseline/email": 1, "baseline/slack": 1, "baseline/webhook": 1,
                                       "newly_failing/email": 3, "newly_failing/slack": 1,
                                       "newly_failing/webhook": 3}

    # a retry, a rerun or a second run of the date: nothing new, nothing sent again
    again = run(history_db, "manual__d3")
    assert again.recorded == 0 and sum(again.counts.values()) == 0
    assert len(http.requests) == 6 and len(smtp.messages) == 4


def test_unreachable_channel_fails_visibly_and_the_next_run_sends_exactly_what_is_unsent(
        history_db, channels, monkeypatch):
    http, smtp = channels
    monkeypatch.setenv("IAM_AUDIT_ALERT_ATTEMPTS", "2")
    http.status = 503   # the webhook and the Slack endpoint are down, the mail server is up
    first = run(history_db, "run-1")
    assert len(first.failures) == 3 + 1 + 2   # webhook: 3 alerts and the digest; slack: gina and the digest
    assert all("connection iam_audit_alerts_webhook" in f or "connection iam_audit_alerts_slack" in f
               for f in first.failures)
    assert all(f.endswith("(HTTP 503)") for f in first.failures), first.failures
    assert len(http.requests) == 2 * 6            # each message tried twice (tenacity), none accepted
    assert len(smtp.messages) == 4
    rows = ledger(history_db)
    unsent = sorted((r[0], r[1]) for r in rows if r[3] == "failed")
    assert len(unsent) == 6 and all(r[5] == 1 for r in rows)
    # nothing secret in the ledger: neither the Slack token nor the receiver's URL
    text = str(history_db.execute("SELECT array_agg(last_error), array_agg(payload::text) "
                                  "FROM aws_policy_alert_ledger").fetchone())
    assert "slack-token-secret" not in text and str(http.port) not in text

    http.requests.clear()
    http.status = 200
    second = run(history_db, "run-2")
    assert second.failures == [] and second.recorded == 0
    assert len(http.requests) == 6 and len(smtp.messages) == 4
    rows = ledger(history_db)
    assert sorted((r[0], r[1]) for r in rows if r[4] == "run-2") == unsent
    assert {r[3] for r in rows} == {"sent"}


def test_owner_routing_by_account_tag_then_mapping_then_default(history_db, channels):
    http, smtp = channels
    history_db.execute("INSERT INTO iam_stage.account_tags VALUES (%s, %s, 'security-contact', %s)",
                       (results.D3, B, "team-b@example.com   slack"))
    history_db.commit()
    routes = alerts.parse_routes(json.dumps({A: ["email:sec-a@example.com"]}), '["webhook"]',
                                 alerts.account_tags(history_db))
    outcome = run(history_db, "run-1", routes)
    assert outcome.failures == []
    recipients = {(r[1], r[2]) for r in ledger(history_db)}
    assert recipients == {("email", "sec-a@example.com"), ("email", "team-b@example.com"),
                          ("slack", "iam_audit_alerts_slack")}
    # an account without tag or mapping goes to the default channel, never nowhere
    assert alerts.Routes(mapping={}, default=["webhook"]).owner("333333333333") == [
        ("webhook", "iam_audit_alerts_webhook")]


def test_a_second_run_of_an_earlier_date_sends_nothing_again(history_db, channels):
    http, smtp = channels
    run(history_db, "run-d2", day=results.D2)
    sent = len(http.requests) + len(smtp.messages)
    assert sent > 0
    run(history_db, "run-d2-again", day=results.D2)
    assert len(http.requests) + len(smtp.messages) == sent


def test_digests_respect_channel_limits():
    items = [{"rule": "r", "title": f"finding {i}", "account_id": A, "severity": "high", "reason": "x" * 300}
             for i in range(400)]
    message = alerts.Message("slack", "c", "digest", items, "2026-11-05", {"compliance": "http://a/compliance/"})
    text, more = alerts.digest_text(message, *alerts.LIMITS["slack"])
    assert more == 400 - 50 and text.endswith(f"... and {more} more: http://a/compliance/")
    assert len(text) <= alerts.LIMITS["slack"][1] + 200
    body = alerts.webhook_body(alerts.Message("webhook", "c", "digest", items * 3, "d", {}))
    assert body["count"] == 1200 and len(body["items"]) == 1000 and body["more"] == 200
    html = alerts.email_html(alerts.Message("email", "x@y", "digest",
                                            [{**items[0], "reason": "<script>alert(1)</script>"}], "d", {}))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_preview_shows_what_would_be_sent_and_sends_nothing(history_db):
    text = alerts.preview(history_db, str(results.D3))
    assert "newly_failing (immediate, severity >= high): 4 alert(s)" in text
    assert "baseline (digest): 2 alert(s)" in text
    assert results.user(B, "gina") in text and "-> webhook iam_audit_alerts_webhook" in text
    assert history_db.execute("SELECT count(*) FROM aws_policy_alert_ledger").fetchone()[0] == 0


def test_two_runs_at_once_never_send_the_same_alert(history_db, postgres, database):
    """A run delivering holds its rows' locks; another run at the same time skips them (SKIP LOCKED),
    and finds them sent once the first commits."""
    import threading

    rules, _ = alerts.load_rules(alerts.rule_dirs(None))
    routes = alerts.Routes(default=["webhook"])
    found = []
    for rule in rules:
        rows = alerts.evaluate_rule(history_db, rule, {"snapshot_date": results.D3, "run_id": "r"}, "10s")
        found += alerts.candidates(rule, rows, str(results.D3), alerts.links_for("http://a", "r"), {})
    assert alerts.record(history_db, found, routes, str(results.D3), "run-a") == 6

    entered, release, sent_by = threading.Event(), threading.Event(), {"a": [], "b": []}

    def slow(message):
        sent_by["a"].append(message)
        entered.set()
        release.wait(30)

    other = postgres.connect(database)
    first = threading.Thread(target=alerts.deliver, args=(other, slow, "run-a", str(results.D3), {}))
    first.start()
    try:
        assert entered.wait(30)
        # run b while run a holds the first message's rows: it sends everything else, not that one
        alerts.deliver(history_db, sent_by["b"].append, "run-b", str(results.D3), {})
    finally:
        release.set()
        first.join(30)
        other.close()
    keys_a = {i["dedup_key"] for m in sent_by["a"] for i in m.items}
    keys_b = {i["dedup_key"] for m in sent_by["b"] for i in m.items}
    assert keys_a and keys_b and not keys_a & keys_b
    assert len(keys_a | keys_b) == 6
    assert history_db.execute("SELECT count(*) FROM aws_policy_alert_ledger WHERE outcome = 'sent'").fetchone()[0] == 6


def test_a_recipient_whose_connection_is_missing_is_an_error_naming_it(history_db, channels):
    routes = alerts.Routes(mapping={A: ["webhook:iam_audit_alerts_teams"]}, default=["webhook"])
    outcome = run(history_db, "run-1", routes)
    assert outcome.failures and all(
        f.endswith("webhook via connection iam_audit_alerts_teams: the connection is not defined")
        for f in outcome.failures)
    rows = ledger(history_db)
    assert {r[3] for r in rows if r[2] == "iam_audit_alerts_teams"} == {"failed"}
    assert {r[3] for r in rows if r[2] == "iam_audit_alerts_webhook"} == {"sent"}   # B: the default


def test_a_webhook_urls_token_is_masked_before_anything_is_sent(monkeypatch):
    """The http provider logs the URL when the receiver cannot be reached; its path (where webhook
    services put their token) and the connection's password are registered with Airflow's masker."""
    from airflow.sdk._shared.secrets_masker import redact

    from iam_audit.alerting.alerts import mask_connection_secrets

    monkeypatch.setenv("AIRFLOW_CONN_TOKENED_WEBHOOK", json.dumps({
        "conn_type": "http", "host": "https://hooks.example.com/services/T0001/B0002/tok3nInPath",
        "password": "pw-secret-value"}))
    line = "Max retries exceeded with url: /services/T0001/B0002/tok3nInPath (pw-secret-value)"
    assert "tok3nInPath" in redact(line)
    mask_connection_secrets("tokened_webhook")
    assert "tok3nInPath" not in redact(line) and "pw-secret-value" not in redact(line)


def test_owner_routing_by_the_nearest_organisational_unit(history_db, channels):
    """Variable iam_audit_alert_routes may name an OU or the root: an account goes to the nearest one above
    it that has recipients (the account's own entry and its tag still come first)."""
    from tests.checks.staging import Snapshot

    s = Snapshot(history_db, snapshot_date=results.D3)
    s.org_node("r-ab12", "ROOT", None, "Root").org_node("ou-ab12-prod0001", "ORGANIZATIONAL_UNIT", "r-ab12", "Prod")
    s.org_node("ou-ab12-core0001", "ORGANIZATIONAL_UNIT", "ou-ab12-prod0001", "Core")
    s.org_node(A, "ACCOUNT", "ou-ab12-core0001", "production").org_node(B, "ACCOUNT", "r-ab12", "sandbox")
    s.commit()
    ancestors = alerts.account_ancestors(history_db)
    assert ancestors[A] == ["ou-ab12-core0001", "ou-ab12-prod0001", "r-ab12"] and ancestors[B] == ["r-ab12"]
    routes = alerts.parse_routes(json.dumps({"ou-ab12-prod0001": ["email:prod@example.com"],
                                             "r-ab12": ["slack"]}), '["webhook"]', {}, ancestors)
    assert routes.owner(A) == [("email", "prod@example.com")]        # Prod, two levels up
    assert routes.owner(B) == [("slack", "iam_audit_alerts_slack")]  # the root
    assert routes.owner("333333333333") == [("webhook", "iam_audit_alerts_webhook")]
    with pytest.raises(Exception, match="neither a 12-digit account id"):
        alerts.parse_routes(json.dumps({"Prod": ["slack"]}), None, {})
