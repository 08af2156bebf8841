"""One headline unit everywhere: findings (control logic × account × resource, counted once at its worst
verdict over the frameworks in scope) and their pass rate, the same in the SQL view, the summary, the
HTML report, the Compliance page and the Superset dashboard's tiles."""

from __future__ import annotations

import pytest

from iam_audit.reporting.headline import ALL, headline
from tests.ui.test_compliance_page import reader_conn  # noqa: F401 - the page's compliance_reader login (fixture)

from .results import D3, A, B, add_exception, put, put_error, user

V3, V5 = "cis_v3.0.0", "cis_v5.0.0"


def seed(db):
    """console_users_mfa in two frameworks on D3 (framework rows -> expected finding):
    alice fail/fail -> fail; bob pass/fail -> fail; carol muted/pass -> muted; dave pass/pass -> pass;
    account B: gina -/pass -> pass, the account could not be evaluated in v3 -> error."""
    for name, v3, v5 in (("alice", "fail", "fail"), ("bob", "pass", "fail"), ("carol", "fail", "pass"),
                         ("dave", "pass", "pass")):
        put(db, D3, A, user(A, name), v3, framework=V3, check_id="1.10")
        put(db, D3, A, user(A, name), v5, framework=V5, check_id="1.9")
    put(db, D3, B, user(B, "gina"), "pass", framework=V5, check_id="1.9")
    put_error(db, D3, B, framework=V3, check_id="1.10")
    db.commit()
    add_exception(db, account_id=A, framework=V3, resource_pattern="%/carol", expires_on=D3)
    db.commit()


def test_a_finding_counts_once_at_its_worst_verdict_over_the_frameworks_in_scope(db):
    seed(db)
    everything = headline(db, D3)
    assert (everything.scope, everything.findings, everything.passing, everything.failing, everything.errors,
            everything.muted) == (ALL, 6, 2, 2, 1, 1)
    assert everything.pass_rate == 0.5
    v3, v5 = headline(db, D3, V3), headline(db, D3, V5)
    assert (v3.passing, v3.failing, v3.errors, v3.muted, v3.pass_rate) == (2, 1, 1, 1, 0.6667)
    assert (v5.passing, v5.failing, v5.errors, v5.muted, v5.pass_rate) == (3, 2, 0, 0, 0.6)
    assert headline(db, D3, "cis_v1.2.0").findings == 0 and headline(db, D3, "cis_v1.2.0").pass_rate is None
    # the framework rows say something else (5 pass, 3 fail): the unit must be named wherever it is shown
    rows = db.execute("SELECT count(*) FILTER (WHERE effective_status = 'pass'), "
                      "count(*) FILTER (WHERE effective_status = 'fail') FROM aws_policy_results_effective "
                      "WHERE snapshot_date = %s", (D3,)).fetchone()
    assert rows == (5, 3)


def test_the_headline_view_and_the_python_reader_agree_per_scope_and_account(db):
    from iam_audit.reporting.headline import headline_per_account

    seed(db)
    for scope in (ALL, V3, V5):
        (findings, passing, failing, errors, muted, rate), = db.execute(
            "SELECT findings, pass_count, fail_count, error_count, muted_count, pass_rate FROM aws_policy_headline "
            "WHERE snapshot_date = %s AND scope = %s", (D3, scope)).fetchall()
        h = headline(db, D3, scope)
        assert (h.findings, h.passing, h.failing, h.errors, h.muted) == (findings, passing, failing, errors, muted)
        assert h.pass_rate == float(rate)
    per_account = headline_per_account(db, D3)
    assert (per_account[A].passing, per_account[A].failing, per_account[A].muted) == (1, 2, 1)
    assert (per_account[B].passing, per_account[B].errors, per_account[B].pass_rate) == (1, 1, 1.0)
    assert headline(db, D3, account_ids=[B]).findings == 2


def test_the_summary_and_the_report_lead_with_the_headline_and_name_the_other_unit(db):
    from iam_audit.reporting.report import build_report_html
    from iam_audit.reporting.summary import build_summary, format_summary

    seed(db)
    text = format_summary(build_summary(db, D3))
    assert "Headline: 2 open findings, pass rate 50.0% of findings (2 passing; 1 error, 1 muted)" in text
    assert text.index("Headline:") < text.index("framework rows")
    # the framework rows' totals are there, labelled with their unit
    assert "In framework rows (one verdict per framework, control and resource): 5 pass, 3 fail" in text
    html = build_report_html(db, D3)
    tiles = html[html.index('<div class="tiles">'):html.index("</div><p")]
    assert '<div class="v">2</div><div class="k">open findings</div>' in tiles
    assert '<div class="v">50%</div><div class="k">pass rate of findings</div>' in tiles
    assert "5 pass, 3 fail, 1 error, 1 muted" in html  # framework rows, said so


def test_the_superset_tiles_count_the_same_findings_per_selected_framework(db):
    from psycopg import sql

    from .test_superset_export import DATASETS

    seed(db)
    latest = DATASETS["datasets/aws_iam_compliance/iam_latest.yaml"]
    metrics = {m["metric_name"]: m["expression"] for m in latest["metrics"]}
    opened = DATASETS["datasets/aws_iam_compliance/iam_open_findings.yaml"]
    db.execute("SET ROLE compliance_reader")
    try:
        for scope, where in ((ALL, "true"), (V3, f"framework = '{V3}'"), (V5, f"framework = '{V5}'")):
            rate, failing, findings = db.execute(sql.SQL("SELECT {}, {}, {} FROM ({}) AS d WHERE {}").format(
                *(sql.SQL(metrics[m]) for m in ("pass_rate", "failing_problems", "problems")),
                sql.SQL(latest["sql"].strip()), sql.SQL(where))).fetchone()
            tile = db.execute(sql.SQL("SELECT {} FROM ({}) AS d WHERE {}").format(
                sql.SQL(next(m["expression"] for m in opened["metrics"] if m["metric_name"] == "problems")),
                sql.SQL(opened["sql"].strip()), sql.SQL(where))).fetchone()[0]
            want = headline(db, D3, scope)
            assert (failing, tile, findings) == (want.failing, want.failing, want.findings), scope
            assert round(float(rate), 4) == want.pass_rate, scope
    finally:
        db.execute("RESET ROLE")


@pytest.mark.usefixtures("reader_conn")
def test_the_compliance_page_leads_with_the_headline_and_its_filters_change_it(db):
    from iam_audit.web import queries, render

    seed(db)
    for params, scope in (({}, ALL), ({"framework": V5}, V5), ({"framework": V3, "account": B}, V3)):
        data = queries.load_compliance(params=params)
        want = headline(db, D3, scope, account_ids=[params["account"]] if "account" in params else None)
        h = data["headline"]
        assert (h["scope"], h["pass"], h["fail"], h["error"], h["muted"]) == \
            (scope, want.passing, want.failing, want.errors, want.muted)
        page = render.render_page(data)
        top = page[page.index("<body>"):]
        assert top.index('id="findings-headline"') < top.index('id="filters"') < top.index('id="open-findings"') \
            < top.index('id="totals"') < top.index('id="scores"')   # the worst findings above the tables
        assert f"<b>{want.failing:,}</b> open findings" in page


@pytest.mark.usefixtures("reader_conn")
def test_the_page_shows_the_whole_reason_and_breaks_an_arn_only_at_its_separators(db):
    from iam_audit.web import queries, render

    reason = "alice has a console password and no MFA device; " * 6 + "fix: enable an MFA device for alice"
    put(db, D3, A, user(A, "alice"), "fail", framework=V3, check_id="1.10", reason=reason)
    db.commit()
    page = render.render_page(queries.load_compliance(params={}))
    assert f'<td class="reason">{reason.strip()}</td>' in page
    assert "…" not in page[page.index('id="findings"'):]
    assert f"arn:<wbr>aws:<wbr>iam:<wbr>:<wbr>{A}:<wbr>user/<wbr>alice" in page  # never inside the account id
