"""Alert rules: the shipped ones are valid; bad ones are refused with their file and line; one failing
rule does not stop the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from iam_audit.alerting import alerts
from tests.bi import results

GOOD = """-- name: any_fail_in_a
-- delivery: digest
-- recipients: [webhook]
SELECT 'fail ' || account_id || ' ' || resource_id AS alert_key, account_id, resource_id, severity, title
FROM aws_policy_open_findings
WHERE account_id = '111111111111' AND snapshot_date = %(snapshot_date)s
"""


def write(folder: Path, name: str, text: str) -> Path:
    (folder / "alerts").mkdir(parents=True, exist_ok=True)
    path = folder / "alerts" / f"{name}.sql"
    path.write_text(text)
    return path


def test_shipped_rules_parse_and_plan(db):
    rules, errors = alerts.load_rules(alerts.rule_dirs(None))
    assert errors == []
    assert {r.name for r in rules} == {"newly_failing", "resolved", "exception_expiry", "account_not_audited",
                                       "baseline"}
    assert {r.name: r.delivery for r in rules}["resolved"] == "digest"
    assert {r.name: r.severity_floor for r in rules}["newly_failing"] == "high"
    for rule in rules:
        alerts.check_rule(db, rule, {"snapshot_date": results.D1, "run_id": "r"})


@pytest.mark.parametrize(("text", "line", "words"), [
    ("-- name: x\n-- delivery: sometimes\nSELECT 1 AS alert_key, '1' AS account_id\n", 2, "immediate or digest"),
    ("-- name: x\n-- colour: red\nSELECT 1\n", 2, "unknown header key"),
    ("-- name: [x\nSELECT 1\n", 1, "not YAML"),
    ("-- name: x\n-- recipients: [pager]\nSELECT 1\n", 2, "channel"),
    ("-- name: x\nSELECT 1 AS alert_key;\n\nSELECT 2;\n", 4, "one query"),
    ("-- name: x\n\nDELETE FROM aws_policy_exceptions\n", 3, "only reads"),
])
def test_bad_headers_and_statements_are_refused_with_their_line(tmp_path, text, line, words):
    path = write(tmp_path, "bad", text)
    with pytest.raises(alerts.RuleError) as refused:
        alerts.parse_rule(path)
    assert refused.value.path == str(path) and refused.value.line == line, str(refused.value)
    assert words in str(refused.value)


@pytest.mark.parametrize(("body", "line", "words"), [
    # an unknown view, named on the rule's third line (line 5 of the file)
    ("SELECT account_id AS alert_key,\n       account_id\nFROM aws_policy_no_such_view\n", 5, "does not exist"),
    # a write hidden in a CTE: the READ ONLY transaction refuses it
    ("WITH gone AS (DELETE FROM aws_policy_exceptions RETURNING account_id)\n"
     "SELECT account_id AS alert_key, account_id FROM gone\n", 3, "data-modifying"),
    # a write through a function call: the READ ONLY transaction refuses it
    ("SELECT nextval('aws_policy_exceptions_id_seq')::text AS alert_key, '111111111111' AS account_id\n", 3,
     "read-only transaction"),
    # the columns the ledger needs
    ("SELECT 'x' AS key, '111111111111' AS account_id\n", 3, "alert_key"),
    ("SELECT 'x' AS alert_key,\n  no_such_column AS account_id FROM aws_policy_open_findings\n", 4,
     "no_such_column"),
])
def test_rules_the_database_refuses_name_file_and_line(db, tmp_path, body, line, words):
    path = write(tmp_path, "bad", "-- name: bad\n-- delivery: digest\n" + body)
    try:
        rule = alerts.parse_rule(path)
    except alerts.RuleError as refused:  # sqlparse may already see the write
        assert "only reads" in str(refused)
        return
    with pytest.raises(alerts.RuleError) as refused:
        alerts.check_rule(db, rule, {"snapshot_date": results.D1, "run_id": "r"})
        alerts.evaluate_rule(db, rule, {"snapshot_date": results.D1, "run_id": "r"}, "10s")
    assert refused.value.path == str(path) and refused.value.line == line, str(refused.value)
    assert words in str(refused.value)
    assert db.execute("SELECT count(*) FROM aws_policy_exceptions").fetchone()[0] == 0


def test_a_failing_rule_does_not_stop_the_others(history_db, tmp_path):
    write(tmp_path, "any_fail_in_a", GOOD)
    write(tmp_path, "slow", "-- name: slow\nSELECT 'k' AS alert_key, '111111111111' AS account_id\n"
                            "FROM pg_sleep(5)\n")
    write(tmp_path, "broken", "-- name: broken\nSELECT 1 / 0 AS alert_key, '111111111111' AS account_id\n")
    rules, errors = alerts.load_rules(alerts.rule_dirs(str(tmp_path)))
    assert errors == []
    sent = []
    run = alerts.run_alerts(history_db, rules, alerts.Routes(), str(results.D3), "run-1", "http://airflow",
                            send=sent.append, timeout="200ms")
    assert len(run.rule_errors) == 2
    assert any("slow.sql" in e and "statement timeout" in e for e in run.rule_errors), run.rule_errors
    assert any("broken.sql:2" in e and "division by zero" in e for e in run.rule_errors), run.rule_errors
    # the user's rule and the shipped ones still ran and were delivered
    assert run.evaluated["any_fail_in_a"] == 5 and run.evaluated["newly_failing"] == 4
    assert sum(len(m.items) for m in sent) == run.recorded > 0


def test_a_user_rule_replaces_the_shipped_one_of_its_name(tmp_path):
    write(tmp_path, "mine", GOOD.replace("any_fail_in_a", "resolved"))
    rules, errors = alerts.load_rules(alerts.rule_dirs(str(tmp_path)))
    assert errors == []
    assert [r.path for r in rules if r.name == "resolved"] == [str(tmp_path / "alerts" / "mine.sql")]
