"""Prototype stage: a proposed rewrite of a check (bench/prototypes/checks/) against the shipped one.

Same synthetic snapshot, same parameters; both run through the check macro exactly as the DAG
renders it; the verdicts must be identical row for row (framework, check, account, resource,
status, reason), and both are timed.
"""

from __future__ import annotations

import time
from datetime import date

import jinja2
from common import BENCH_DB, BENCH_DIR, fresh_database, log
from stage_checks import build_snapshot

PROTOTYPES = BENCH_DIR / "prototypes"


def _render(logic: str, prototype: bool) -> str:
    from iam_audit.paths import SQL_DIR

    paths = ([str(PROTOTYPES)] if prototype else []) + [str(SQL_DIR)]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(paths), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    return env.get_template(f"checks/{logic}.sql").render()


def _run(conn, sql: str, params: dict) -> float:
    from iam_audit.database import split_statements

    t0 = time.perf_counter()
    for statement in split_statements(sql):
        conn.execute(statement, params)
    conn.commit()
    return time.perf_counter() - t0


def run_prototypes(accounts: int, users: int) -> dict:
    from iam_audit.catalogue import load_catalogue
    from iam_audit.database import check_parameters

    snapshot_date = date.today().isoformat()
    catalogue = load_catalogue()
    params = check_parameters(snapshot_date, "bench", list(catalogue.frameworks))
    conn = fresh_database(BENCH_DB)
    out = {"accounts": accounts, "users_per_account": users, "prototypes": {}}
    try:
        build_snapshot(conn, accounts, users, snapshot_date)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        conn.autocommit = False
        for path in sorted((PROTOTYPES / "checks").glob("*.sql")):
            logic = path.stem
            key = "framework, check_id, account_id, resource_id, status, reason"
            shipped = _run(conn, _render(logic, False), params)
            conn.execute(f"CREATE TEMP TABLE shipped AS SELECT {key} FROM aws_policy_results "  # noqa: S608
                         "WHERE control_logic = %s", (logic,))
            proto = _run(conn, _render(logic, True), params)
            diff = conn.execute(
                f"SELECT count(*) FROM ((SELECT {key} FROM aws_policy_results WHERE control_logic = %s "  # noqa: S608
                f"EXCEPT ALL SELECT * FROM shipped) UNION ALL (SELECT * FROM shipped EXCEPT ALL "
                f"SELECT {key} FROM aws_policy_results WHERE control_logic = %s)) d", (logic, logic)).fetchone()[0]
            verdicts = conn.execute("SELECT count(*) FROM shipped").fetchone()[0]
            conn.execute("DROP TABLE shipped")
            conn.commit()
            out["prototypes"][logic] = {"shipped_seconds": round(shipped, 2), "prototype_seconds": round(proto, 2),
                                        "speedup": round(shipped / proto, 1) if proto else None,
                                        "verdicts": verdicts, "differing_rows": diff}
            log(f"prototype {logic}: shipped {shipped:.2f} s, prototype {proto:.2f} s, {diff} differing rows")
    finally:
        conn.close()
    return out
