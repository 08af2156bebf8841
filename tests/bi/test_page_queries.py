"""The Compliance page's queries over the history views answer what its earlier queries over
aws_policy_results answered (those read every verdict of every date)."""

import importlib.util
from pathlib import Path

from .results import D1, D2, D3, A, B, history, put, user

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "compliance_plugin.py"

EARLIER = {
    "scores": """
        WITH latest AS (
            SELECT account_id, framework, max(snapshot_date) AS snapshot_date
            FROM aws_policy_results GROUP BY account_id, framework)
        SELECT r.account_id, r.framework, r.snapshot_date,
               count(*) FILTER (WHERE r.status = 'pass'), count(*) FILTER (WHERE r.status = 'fail'),
               count(*) FILTER (WHERE r.status = 'error'), max(r.run_id)
        FROM aws_policy_results r JOIN latest l USING (account_id, framework, snapshot_date)
        GROUP BY r.account_id, r.framework, r.snapshot_date ORDER BY r.account_id, r.framework""",
    "open_findings": """
        WITH latest AS (
            SELECT account_id, framework, max(snapshot_date) AS snapshot_date
            FROM aws_policy_results GROUP BY account_id, framework)
        SELECT r.snapshot_date, r.framework, r.check_id, r.title, r.severity, r.account_id,
               r.resource_id, r.resource_type, r.reason, r.run_id, r.evaluated_at
        FROM aws_policy_results r JOIN latest l USING (account_id, framework, snapshot_date)
        WHERE r.status = 'fail'
        ORDER BY r.evaluated_at DESC,
                 CASE r.severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END,
                 r.framework DESC, r.account_id, r.check_id, r.resource_id
        LIMIT %(limit)s""",
    "trend": """
        SELECT snapshot_date, framework,
               count(*) FILTER (WHERE status = 'pass'), count(*) FILTER (WHERE status = 'fail'),
               count(*) FILTER (WHERE status = 'error'), count(DISTINCT account_id)
        FROM aws_policy_results
        WHERE snapshot_date IN (SELECT DISTINCT snapshot_date FROM aws_policy_results
                                ORDER BY snapshot_date DESC LIMIT %(snapshots)s)
        GROUP BY snapshot_date, framework ORDER BY snapshot_date, framework""",
}


def page_queries():
    spec = importlib.util.spec_from_file_location("compliance_plugin_queries", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.QUERIES


def test_page_queries_answer_as_before(db):
    history(db)
    # a second framework, older in account B
    for day in (D1, D2):
        put(db, day, B, user(B, "gina"), "fail", framework="iam_hygiene", check_id="H1")
    put(db, D3, A, user(A, "zed"), "error", framework="iam_hygiene", check_id="H1")
    db.commit()
    params = {"limit": 50, "snapshots": 2}
    queries = page_queries()
    for name, earlier in EARLIER.items():
        new = db.execute(queries[name], params).fetchall()
        old = db.execute(earlier, params).fetchall()
        assert old, name
        assert [tuple(r) for r in new] == [tuple(r) for r in old], name
