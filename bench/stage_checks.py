"""Check stage: every check of the catalogue on a synthetic snapshot, beside a full scan of what they read.

1. synthetic.sql fills iam_stage.* for N accounts x M users with generate_series;
2. each check runs through database.run_check (the statements its DAG task runs), timed;
3. the staging tables the checks read are scanned once (sequential, no parallel workers,
   like the checks' INSERT ... SELECT, which PostgreSQL never parallelises), warm cache;
4. the "write floor": copying every verdict the checks wrote into an identical table,
   i.e. what writing the output alone costs;
5. EXPLAIN (ANALYZE, BUFFERS) of each check's statements in a rolled-back transaction,
   summarised as node types, nested loops (with a quadratic flag) and the costliest nodes.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import date

from common import BENCH_DB, BENCH_DIR, fresh_database, log

READINESS_TABLES = {"accounts", "extraction_status"}


def build_snapshot(conn, accounts: int, users: int, snapshot_date: str) -> dict:
    sql = (BENCH_DIR / "synthetic.sql").read_text()
    sql = sql.replace("{accounts}", str(accounts)).replace("{users}", str(users)).replace("{date}", snapshot_date)
    t0 = time.perf_counter()
    with conn.transaction():
        conn.execute(sql)
    insert_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    conn.execute("VACUUM ANALYZE") if conn.autocommit else None
    analyze_seconds = time.perf_counter() - t1
    rows = {}
    for (table,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'iam_stage' ORDER BY 1").fetchall():
        rows[table] = conn.execute(f"SELECT count(*) FROM iam_stage.{table}").fetchone()[0]  # noqa: S608
    size = conn.execute("SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'iam_stage'").fetchone()[0]
    return {"insert_seconds": round(insert_seconds, 2), "vacuum_analyze_seconds": round(analyze_seconds, 2),
            "rows": rows, "total_rows": sum(rows.values()), "size": size}


def tables_read(logic: str) -> set[str]:
    from iam_audit.database import render_check

    return set(re.findall(r"iam_stage\.([a-z_]+)", render_check(logic))) | READINESS_TABLES


def scan_seconds(conn, tables: set[str]) -> dict[str, float]:
    out = {}
    conn.execute("SET max_parallel_workers_per_gather = 0")
    conn.execute("SET enable_indexonlyscan = off")
    conn.execute("SET enable_indexscan = off")
    conn.execute("SET enable_bitmapscan = off")
    for table in sorted(tables):
        best = None
        for _ in range(2):  # first pass warms the cache
            t0 = time.perf_counter()
            conn.execute(f"SELECT count(*) FROM iam_stage.{table}").fetchone()  # noqa: S608
            elapsed = time.perf_counter() - t0
            best = elapsed if best is None else min(best, elapsed)
        out[table] = round(best, 4)
    for setting in ("max_parallel_workers_per_gather", "enable_indexonlyscan", "enable_indexscan",
                    "enable_bitmapscan"):
        conn.execute(f"RESET {setting}")
    conn.commit()
    return out


# ---- plans -----------------------------------------------------------------------------

def _walk(node, out):
    out.append(node)
    for child in node.get("Plans", []):
        _walk(child, out)


def summarize_plan(plan: dict) -> dict:
    nodes: list[dict] = []
    _walk(plan["Plan"], nodes)
    types = Counter(n["Node Type"] for n in nodes)
    loops = []
    for n in nodes:
        if n["Node Type"] != "Nested Loop" or len(n.get("Plans", [])) < 2:
            continue
        outer, inner = n["Plans"][0], n["Plans"][1]
        outer_rows = outer.get("Actual Rows", 0) * outer.get("Actual Loops", 1)
        inner_per_loop = inner.get("Actual Rows", 0)
        inner_loops = inner.get("Actual Loops", 1)
        inner_total = inner_per_loop * inner_loops
        removed = n.get("Rows Removed by Join Filter", 0)
        indexed = inner["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Memoize",
                                         "Function Scan", "Result", "Values Scan")
        # Quadratic: the inner side is rescanned without an index for many outer rows, and the
        # rows it produces (or the join filter throws away) far exceed both inputs.
        quadratic = (not indexed and inner_loops > 100
                     and (inner_total + removed) > 10 * max(outer_rows + inner_per_loop, 1) and
                     (inner_total + removed) > 100_000)
        loops.append({"inner": inner["Node Type"] + (f" on {inner['Relation Name']}"
                                                     if "Relation Name" in inner else ""),
                      "outer_rows": outer_rows, "inner_loops": inner_loops, "inner_rows_total": inner_total,
                      "rows_removed_by_join_filter": removed, "quadratic": quadratic})
    # exclusive time per node (ms): total minus children's totals, times loops
    costly = []
    for n in nodes:
        total = n.get("Actual Total Time", 0) * n.get("Actual Loops", 1)
        children = sum(c.get("Actual Total Time", 0) * c.get("Actual Loops", 1) for c in n.get("Plans", []))
        label = n["Node Type"] + (f" on {n['Relation Name']}" if "Relation Name" in n else "")
        costly.append((round(total - children, 1), label))
    costly.sort(reverse=True)
    return {
        "execution_ms": round(plan.get("Execution Time", 0), 1),
        "node_types": dict(types.most_common()),
        "nested_loops": loops,
        "quadratic_nested_loop": any(x["quadratic"] for x in loops),
        "costliest_nodes_ms": [{"ms": ms, "node": label} for ms, label in costly[:4]],
        "shared_buffers_hit_read": [plan["Plan"].get("Shared Hit Blocks"), plan["Plan"].get("Shared Read Blocks")],
    }


def explain(conn, logic: str, params: dict) -> list[dict]:
    from iam_audit.database import render_check, split_statements

    plans = []
    try:
        with conn.transaction():
            for statement in split_statements(render_check(logic)):
                row = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params).fetchone()
                plan = row[0][0]
                summary = summarize_plan(plan)
                summary["statement"] = next((w for w in re.findall(r"\b(DELETE|INSERT|UPDATE|WITH)\b", statement)), "?")
                plans.append(summary)
            raise _Rollback
    except _Rollback:
        pass
    return plans


class _Rollback(Exception):
    pass


# ---- stage ------------------------------------------------------------------------------

def run_checks(accounts: int, users: int, with_plans: bool = True) -> dict:
    from iam_audit.database import check_parameters, run_check
    from iam_audit.evaluate.catalogue import load_catalogue

    snapshot_date = date.today().isoformat()
    catalogue = load_catalogue()
    logics = [c.logic for c in catalogue.checks]
    log(f"checks: building a synthetic snapshot of {accounts} accounts x {users} users")
    conn = fresh_database(BENCH_DB)
    conn.autocommit = False
    try:
        snap = build_snapshot(conn, accounts, users, snapshot_date)
        conn.commit()
        conn.autocommit = True
        t0 = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        snap["vacuum_analyze_seconds"] = round(time.perf_counter() - t0, 2)
        conn.autocommit = False
        log(f"checks: {snap['total_rows']} staging rows ({snap['size']}) in {snap['insert_seconds']} s")

        read_by = {logic: tables_read(logic) for logic in logics}
        all_tables = set().union(*read_by.values())
        scans = scan_seconds(conn, all_tables)
        scan_total = round(sum(scans.values()), 3)

        per_check = {}
        total = 0.0
        for logic in logics:
            t0 = time.perf_counter()
            run_check(conn, logic, snapshot_date, run_id="bench", frameworks=list(catalogue.frameworks))
            elapsed = time.perf_counter() - t0
            total += elapsed
            verdicts = conn.execute("SELECT count(*) FROM aws_policy_results WHERE control_logic = %s",
                                    (logic,)).fetchone()[0]
            conn.commit()
            own_scan = sum(scans[t] for t in read_by[logic])
            per_check[logic] = {"seconds": round(elapsed, 3), "verdicts": verdicts,
                                "tables": sorted(read_by[logic]),
                                "scan_seconds_of_its_tables": round(own_scan, 4),
                                "ratio_to_its_scan": round(elapsed / own_scan, 1) if own_scan else None}
        log(f"checks: {len(logics)} checks in {total:.1f} s (scan {scan_total} s)")

        # What writing the output alone costs: the same verdict rows into an identical table.
        conn.execute("CREATE TABLE bench_write_floor (LIKE aws_policy_results INCLUDING ALL)")
        conn.commit()
        t0 = time.perf_counter()
        conn.execute("INSERT INTO bench_write_floor SELECT * FROM aws_policy_results")
        conn.commit()
        write_floor = time.perf_counter() - t0
        verdicts_total = conn.execute("SELECT count(*) FROM aws_policy_results").fetchone()[0]

        plans = {}
        if with_plans:
            params = check_parameters(snapshot_date, "bench-explain", list(catalogue.frameworks))
            for logic in logics:
                plans[logic] = explain(conn, logic, params)
                per_check[logic]["quadratic_nested_loop"] = any(p["quadratic_nested_loop"] for p in plans[logic])
            conn.rollback()
    finally:
        conn.close()
    result = {
        "accounts": accounts, "users_per_account": users, "snapshot": snap,
        "checks": per_check,
        "total_seconds": round(total, 2),
        "scan_seconds": scan_total,
        "scan_seconds_by_table": scans,
        "ratio_total_to_scan": round(total / scan_total, 1) if scan_total else None,
        "target_ratio": 10,
        "verdicts_written": verdicts_total,
        "write_floor_seconds": round(write_floor, 2),
        "ratio_total_to_scan_plus_write_floor": round(total / (scan_total + write_floor), 2),
        "plans": plans,
    }
    result["target_met"] = result["ratio_total_to_scan"] is not None and result["ratio_total_to_scan"] <= 10
    slow = sorted(per_check.items(), key=lambda kv: -kv[1]["seconds"])[:3]
    result["slowest"] = [{"logic": k, **{x: v[x] for x in ("seconds", "verdicts")}} for k, v in slow]
    return result
