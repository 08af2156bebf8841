"""PROTOTYPE (bench only): the check macro's DELETE as shipped against an EXISTS rewrite, on the
benchmark database as the last `checks` run left it (verdicts present, i.e. a re-run of the date).

    .venv/bin/python bench/prototypes/explain_delete.py [logic]

Both statements run under EXPLAIN (ANALYZE) in a transaction that is rolled back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import BENCH_DB, postgres  # noqa: E402

SHIPPED = """DELETE FROM aws_policy_results
WHERE snapshot_date = %(d)s AND control_logic = %(logic)s AND framework = ANY(%(f)s)
  AND account_id IN (SELECT account_id FROM iam_stage.accounts WHERE snapshot_date = %(d)s)"""

REWRITE = """DELETE FROM aws_policy_results r
WHERE r.snapshot_date = %(d)s AND r.control_logic = %(logic)s AND r.framework = ANY(%(f)s)
  AND EXISTS (SELECT 1 FROM iam_stage.accounts a
              WHERE a.snapshot_date = %(d)s AND a.account_id = r.account_id)"""


def _nodes(node: dict, out: list) -> list:
    out.append(node["Node Type"] + (f" on {node['Relation Name']}" if "Relation Name" in node else ""))
    for child in node.get("Plans", []):
        _nodes(child, out)
    return out


def main(logic: str = "policies_on_groups_or_roles_only") -> dict:
    out = {"logic": logic}
    with postgres().connect(BENCH_DB) as conn:  # not autocommit: every EXPLAIN ANALYZE is rolled back
        d = conn.execute("SELECT max(snapshot_date) FROM aws_policy_results").fetchone()[0]
        frameworks = [r[0] for r in conn.execute("SELECT DISTINCT framework FROM aws_policy_results")]
        for name, sql in (("shipped", SHIPPED), ("exists_rewrite", REWRITE)):
            plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql,
                                {"d": d, "logic": logic, "f": frameworks}).fetchone()[0][0]
            conn.rollback()
            out[name] = {"execution_ms": round(plan["Execution Time"], 1), "nodes": _nodes(plan["Plan"], [])}
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:]), indent=1))
