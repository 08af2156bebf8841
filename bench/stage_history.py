"""History stage: N days of verdict history at A accounts x U users with C % daily churn.

1. synthetic.sql stages day 1; every check runs through database.run_check (the real
   check path); the same checks also run through the earlier design's macro
   (tests/history/legacy_check.sql, one row per framework x control x resource into a
   plain table with the earlier indexes) for the baseline of the same run;
2. day 2 is staged as a copy of day 1 with C % of users flipping MFA and C % of access
   keys rotated, and both designs run their checks again (check time per added day);
3. days 3..N come from a synthetic generator documented as such: for every (variant,
   account) the previous day's verdicts with C % of them flipped (pass <-> fail, new
   reason), written through the real write path (aws_policy_store_evaluation) -- only
   the check bodies are skipped;
4. bytes per added day (history tables with their indexes, after VACUUM), the time of
   each tile query of docs/data-dictionary.md and of the Compliance page (best of 3,
   warm), and retention (aws_policy_expire_history) of the oldest days.
   The tiles are timed twice: without exceptions, then with BENCH_EXCEPTIONS (a realistic
   set of muting rules: narrow ones -- one account, one control, a resource pattern --
   and broad ones -- a whole control in one framework, one account in every framework;
   one expired, two expiring within 14 days), created days before the newest snapshot
   (back-dated by the table's owner, as tests/bi/results.py does: the guard trigger
   otherwise sets created_at to now()) and deleted again after the timing.
The database iam_bench_history is kept for inspection (bench/.state/pg).
"""

from __future__ import annotations

import os
import time
from datetime import date, timedelta

from common import BENCH_DIR, fresh_database, log

# another name (IAM_BENCH_HISTORY_DB) keeps a second run from dropping the first one's database
HISTORY_DB = os.environ.get("IAM_BENCH_HISTORY_DB", "iam_bench_history")
HISTORY_TABLES = ("aws_policy_verdicts", "aws_policy_evaluations", "aws_policy_scopes", "aws_policy_variants",
                  "aws_policy_pairs")

TILES = {
    "trend (org pass rate per framework, 90 days)": """
        SELECT snapshot_date, framework,
               round(100.0 * sum(pass_count) / nullif(sum(pass_count) + sum(fail_count), 0), 1) AS pass_rate_pct
        FROM aws_policy_framework_scores
        WHERE snapshot_date >= current_date - 90
        GROUP BY 1, 2 ORDER BY 1, 2""",
    "worst accounts today": """
        SELECT s.account_id, a.account_name,
               sum(s.fail_count) AS failing_resources,
               count(*) FILTER (WHERE s.fail_count > 0) AS failing_controls,
               round(100.0 * sum(s.pass_count) / nullif(sum(s.pass_count) + sum(s.fail_count), 0), 1)
                   AS pass_rate_pct
        FROM aws_policy_scores s
        LEFT JOIN aws_policy_accounts a USING (snapshot_date, account_id)
        WHERE s.snapshot_date = (SELECT max(snapshot_date) FROM aws_policy_snapshots) AND s.framework = 'cis_v3.0.0'
        GROUP BY 1, 2 ORDER BY pass_rate_pct NULLS FIRST, failing_resources DESC LIMIT 10""",
    "newly failing today": """
        SELECT account_id, framework, check_id, title, severity, resource_id, change_type, previous_status, reason
        FROM aws_policy_changes
        WHERE snapshot_date = (SELECT max(snapshot_date) FROM aws_policy_snapshots)
          AND current_status = 'fail' AND change_type IN ('newly_failing', 'new_resource')
        ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END,
                 account_id""",
    "oldest open findings": """
        SELECT account_id, framework, check_id, title, severity, resource_id, first_failing_date, age_days
        FROM aws_policy_open_findings
        WHERE framework = 'cis_v3.0.0'
        ORDER BY age_days DESC, severity LIMIT 20""",
    "muted findings expiring in 14 days": """
        SELECT exception_id, exception_expires_on, exception_reason, account_id, framework, check_id, resource_id
        FROM aws_policy_muted_verdicts
        WHERE is_current AND exception_expires_on < current_date + 14
        ORDER BY exception_expires_on, account_id""",
    "latest verdicts of one account": """
        SELECT * FROM aws_policy_latest WHERE account_id = '100000000150' AND framework = 'cis_v3.0.0'""",
    "exceptions expiring in 14 days": """
        SELECT id, account_id, framework, check_id, resource_pattern, reason, expires_on, created_by
        FROM aws_policy_exceptions
        WHERE expires_on BETWEEN current_date AND current_date + 14 ORDER BY expires_on""",
    "account freshness": "SELECT * FROM aws_policy_account_freshness ORDER BY is_stale DESC, account_id",
}

# Muting rules of the second tile timing: (created days before the newest snapshot, expires days
# after it (negative: expired), account_id, framework, check_id, resource_pattern).
BENCH_EXCEPTIONS = (
    # narrow: one account, one control, a resource pattern
    (20, 10, "100000000150", "cis_v3.0.0", "1.10", "arn:aws:iam::100000000150:user/user-1%"),
    (5, 60, "100000000007", None, None, "arn:aws:iam::100000000007:user/user-26"),
    (40, 200, "100000000042", "iam_hygiene", None, "%:user/user-_6"),
    # expired three days ago
    (25, -3, "100000000099", None, "1.12", None),
    # broad: a whole control in one framework, expiring within 14 days
    (15, 7, None, "cis_v3.0.0", "1.12", None),
    # broad: one account in every framework
    (10, 30, "100000000200", None, None, None),
)


def add_bench_exceptions(conn) -> int:
    """Insert BENCH_EXCEPTIONS relative to the newest snapshot (committed); returns their count."""
    newest = conn.execute("SELECT max(snapshot_date) FROM aws_policy_scopes").fetchone()[0]
    conn.execute("ALTER TABLE aws_policy_exceptions DISABLE TRIGGER aws_policy_exceptions_guard")
    for created, expires, account, framework, check_id, pattern in BENCH_EXCEPTIONS:
        conn.execute(
            """INSERT INTO aws_policy_exceptions (account_id, framework, check_id, resource_pattern, reason,
                                                  expires_on, created_by, created_at)
               VALUES (%s, %s, %s, %s, 'bench: accepted risk', %s, 'bench', %s::timestamptz)""",
            (account, framework, check_id, pattern, newest + timedelta(days=expires),
             f"{newest - timedelta(days=created)} 12:00:00+00"))
    conn.execute("ALTER TABLE aws_policy_exceptions ENABLE TRIGGER aws_policy_exceptions_guard")
    conn.commit()
    return len(BENCH_EXCEPTIONS)


def remove_bench_exceptions(conn) -> None:
    conn.execute("DELETE FROM aws_policy_exceptions WHERE created_by = 'bench'")
    conn.commit()


def time_tiles_both(conn) -> dict:
    """time_tiles without exceptions, then with BENCH_EXCEPTIONS (removed afterwards)."""
    import psycopg

    out = {"tiles_seconds": time_tiles(conn)}
    add_bench_exceptions(conn)
    try:
        out["tiles_with_exceptions_seconds"] = time_tiles(conn)
        conn.execute("SET statement_timeout = '60s'")
        out["muted_rows_with_exceptions"] = conn.execute(
            "SELECT count(*) FROM aws_policy_muted_verdicts").fetchone()[0]
    except psycopg.Error as exc:
        out["muted_rows_with_exceptions"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        conn.rollback()
        remove_bench_exceptions(conn)
    return out


class _RecordingCursor:
    """A cursor that keeps every statement the Compliance page runs, with its parameters."""

    def __init__(self, cur, into: list):
        self._cur, self._into = cur, into

    def execute(self, sql, params=None):
        self._into.append((sql, params))
        return self._cur.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._cur, name)


class _PageHook:
    """Hands the page (src/iam_audit/web/queries.py) the bench connection: its statements
    run exactly as the page builds them (values from the data, filters as on the page)."""

    def __init__(self, conn, into: list):
        self._conn, self._into = conn, into

    def get_conn(self):
        hook = self

        class Conn:
            autocommit = False

            def cursor(self):
                return _RecordingCursor(hook._conn.cursor(), hook._into)

            def rollback(self):
                hook._conn.rollback()

            def close(self):
                pass

        return Conn()


def page_queries(conn, filters: dict | None = None) -> dict[str, tuple[str, dict, list[str]]]:
    """The statements of one Compliance page load, named by the page's QUERIES keys."""
    from iam_audit.web import queries as module
    recorded: list = []
    conn.rollback()
    module.load_compliance(_PageHook(conn, recorded), filters or {})
    conn.rollback()
    out = {}
    settings: list[str] = []  # the page's SET LOCAL statements before a statement (its planner settings)
    for sql, params in recorded:
        if sql.lstrip().upper().startswith("SET "):
            if sql.lstrip().upper().startswith("SET LOCAL ") and "DEFAULT" not in sql.upper() \
                    and "STATEMENT_TIMEOUT" not in sql.upper():
                settings.append(sql)
            continue
        if not isinstance(params, dict):
            continue
        name = next((k for k, q in module.QUERIES.items() if q == sql), None)
        if name is None:  # a statement formatted with the page's fragments (findings, accounts)
            name = next(k for k, q in module.QUERIES.items() if "{" in q and sql.startswith(q.split("{", 1)[0]))
            name += f" ({', '.join(sorted(filters))})" if filters else ""
        out[f"page: {name}"] = (sql, params, settings)
        settings = []
    return out


def legacy_env():
    import jinja2

    from iam_audit.paths import SQL_DIR

    legacy = (BENCH_DIR.parent / "tests" / "history" / "legacy_check.sql").read_text()
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.DictLoader({"macros/check.sql": legacy}),
                                    jinja2.FileSystemLoader(str(SQL_DIR))]),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


LEGACY_TABLE = """
CREATE TABLE legacy_results (
    snapshot_date date NOT NULL, framework text NOT NULL, check_id text NOT NULL, title text NOT NULL,
    severity text NOT NULL, account_id text NOT NULL, resource_id text NOT NULL, resource_type text,
    status text NOT NULL, reason text NOT NULL, run_id text, evaluated_at timestamptz NOT NULL DEFAULT now(),
    control_logic text,
    CONSTRAINT legacy_results_key UNIQUE (snapshot_date, framework, check_id, account_id, resource_id));
CREATE INDEX ON legacy_results (snapshot_date, status);
CREATE INDEX ON legacy_results (framework, check_id, account_id, resource_id, snapshot_date);
CREATE INDEX ON legacy_results (account_id, snapshot_date);
CREATE INDEX ON legacy_results (framework, check_id, account_id, resource_id, snapshot_date) WHERE status = 'fail';
"""


def vacuum(conn) -> None:
    """VACUUM ANALYZE on a connection of its own in autocommit mode (VACUUM cannot run
    inside a transaction block, and the bench connection may be in one)."""
    from common import postgres

    conn.commit()
    with postgres().connect(HISTORY_DB, autocommit=True) as own:
        own.execute("VACUUM ANALYZE")


def size(conn, tables) -> int:
    return conn.execute("SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest(%s::text[]) t",
                        (list(tables),)).fetchone()[0]


def run_checks_both(conn, day: date, env, logics, frameworks) -> dict:
    from iam_audit.database import check_parameters, run_check, split_statements

    params = check_parameters(day, f"bench-{day}", frameworks)
    t0 = time.perf_counter()
    for logic in logics:
        run_check(conn, logic, day, f"bench-{day}", frameworks)
    new = time.perf_counter() - t0
    t0 = time.perf_counter()
    for logic in logics:
        with conn.cursor() as cur:
            for statement in split_statements(env.get_template(f"checks/{logic}.sql").render()):
                cur.execute(statement, params)
        conn.commit()
    old = time.perf_counter() - t0
    return {"new_seconds": round(new, 2), "earlier_design_seconds": round(old, 2),
            "speedup": round(old / new, 1) if new else None}


def stage_copy(conn, source: date, target: date, churn_pct: float) -> None:
    from iam_audit.ingest.load import STAGING_TABLES

    with conn.transaction():
        for table in STAGING_TABLES:
            conn.execute(f"CREATE TEMP TABLE _copy ON COMMIT DROP AS SELECT * FROM iam_stage.{table} "  # noqa: S608
                         "WHERE snapshot_date = %s", (source,))
            conn.execute("UPDATE _copy SET snapshot_date = %s", (target,))
            conn.execute(f"INSERT INTO iam_stage.{table} SELECT * FROM _copy")  # noqa: S608
            conn.execute("DROP TABLE _copy")
        share = churn_pct / 100.0
        conn.execute("UPDATE iam_stage.credential_report SET mfa_active = NOT mfa_active "
                     "WHERE snapshot_date = %s AND NOT is_root AND random() < %s", (target, share))
        conn.execute("UPDATE iam_stage.access_keys SET create_date = now() - interval '1 day' "
                     "WHERE snapshot_date = %s AND random() < %s", (target, share))


SYNTHETIC_DAY = """
DROP TABLE IF EXISTS pg_temp._eval_pairs, pg_temp._eval_verdicts;
CREATE TEMP TABLE _eval_pairs ON COMMIT DROP AS
SELECT variant_id, account_id, control_logic, error_reason
FROM aws_policy_evaluations WHERE snapshot_date = %(prev)s;
CREATE TEMP TABLE _eval_verdicts ON COMMIT DROP AS
SELECT i.variant_id, i.account_id, i.resource_id, i.resource_type,
       CASE WHEN flip THEN CASE i.status WHEN 'pass' THEN 'fail' ELSE 'pass' END ELSE i.status END AS status,
       CASE WHEN flip THEN 'synthetic churn on ' || %(day)s || ': was ' || i.status ELSE i.reason END AS reason
FROM aws_policy_evaluations e
JOIN aws_policy_verdicts i
  ON i.variant_id = e.variant_id AND i.account_id = e.account_id
 AND i.valid_from <= e.snapshot_date AND i.valid_to >= e.snapshot_date
CROSS JOIN LATERAL (SELECT random() < %(share)s AS flip) f
WHERE e.snapshot_date = %(prev)s AND e.error_reason IS NULL;
INSERT INTO aws_policy_scopes (snapshot_date, framework, check_id, variant_id, title, severity)
SELECT %(day)s, framework, check_id, variant_id, title, severity FROM aws_policy_scopes WHERE snapshot_date = %(prev)s
ON CONFLICT DO NOTHING;
SELECT aws_policy_store_evaluation(%(day)s, 'synthetic-' || %(day)s);
"""


def run_history(accounts: int, users: int, days: int, churn_pct: float, retention_keep: int | None = None) -> dict:
    from stage_checks import build_snapshot

    from iam_audit.evaluate.catalogue import load_catalogue

    catalogue = load_catalogue()
    logics = [c.logic for c in catalogue.checks]
    frameworks = list(catalogue.frameworks)
    env = legacy_env()
    conn = fresh_database(HISTORY_DB)
    conn.execute(LEGACY_TABLE)
    conn.commit()
    today = date.today()
    day1 = today - timedelta(days=days - 1)
    log(f"history: staging {accounts} x {users} for {day1}")
    snapshot = build_snapshot(conn, accounts, users, day1.isoformat())
    out: dict = {"accounts": accounts, "users": users, "days": days, "churn_pct": churn_pct, "snapshot": snapshot}

    vacuum(conn)
    log("history: day 1, both designs")
    out["day1_checks"] = run_checks_both(conn, day1, env, logics, frameworks)
    log(f"history: day 1 checks {out['day1_checks']}")
    vacuum(conn)
    out["day1_bytes"] = {"history": size(conn, HISTORY_TABLES), "earlier_design": size(conn, ["legacy_results"])}
    out["day1_rows"] = {
        "aws_policy_results": conn.execute("SELECT count(*) FROM aws_policy_results").fetchone()[0],
        **history_rows(conn)}

    day2 = day1 + timedelta(days=1)
    stage_copy(conn, day1, day2, churn_pct)
    vacuum(conn)
    before = conn.execute("SELECT count(*) FROM aws_policy_verdicts WHERE valid_to = 'infinity'").fetchone()[0]
    log("history: day 2 (staged with churn), both designs")
    out["day2_checks"] = run_checks_both(conn, day2, env, logics, frameworks)
    log(f"history: day 2 checks {out['day2_checks']}")
    changed = conn.execute("SELECT count(*) FROM aws_policy_verdicts WHERE valid_from = %s", (day2,)).fetchone()[0]
    out["day2_changed_intervals"] = {"opened": changed, "open_before": before,
                                     "share_pct": round(100.0 * changed / max(before, 1), 2)}
    vacuum(conn)
    out["day2_bytes"] = {"history": size(conn, HISTORY_TABLES), "earlier_design": size(conn, ["legacy_results"])}
    # the earlier design's table is not needed further: drop it so later days measure the history alone
    conn.execute("DROP TABLE legacy_results")
    conn.commit()

    per_day = []
    base_bytes = out["day2_bytes"]["history"]
    for n in range(3, days + 1):
        day = day1 + timedelta(days=n - 1)
        t0 = time.perf_counter()
        with conn.transaction():
            for statement in SYNTHETIC_DAY.strip().split(";\n"):
                if statement.strip():
                    conn.execute(statement, {"day": day, "prev": day - timedelta(days=1), "share": churn_pct / 100.0})
        per_day.append(round(time.perf_counter() - t0, 2))
        if n % 10 == 0 or n == days:
            vacuum(conn)
            log(f"history: day {n}/{days}, {per_day[-1]} s, history {size(conn, HISTORY_TABLES) / 2**20:.0f} MiB")
            conn.commit()  # else the next day's conn.transaction() is only a savepoint of this one
    vacuum(conn)
    final_bytes = size(conn, HISTORY_TABLES)
    out["synthetic_day_seconds"] = {"mean": round(sum(per_day) / max(len(per_day), 1), 2),
                                    "max": max(per_day) if per_day else None}
    out["bytes"] = {
        "history_after_all_days": final_bytes,
        "per_added_day": round((final_bytes - base_bytes) / max(days - 2, 1)),
        "earlier_design_one_day": out["day1_bytes"]["earlier_design"],
        "per_table": {t: size(conn, [t]) for t in HISTORY_TABLES},
    }
    out["rows"] = history_rows(conn)
    out |= time_tiles_both(conn)
    if retention_keep:
        conn.commit()
        out["retention"] = measure_retention(conn, today, retention_keep, out["rows"])
    conn.close()
    return out


def history_rows(conn) -> dict:
    return {"intervals": conn.execute("SELECT count(*) FROM aws_policy_verdicts").fetchone()[0],
            "evaluations": conn.execute("SELECT count(*) FROM aws_policy_evaluations").fetchone()[0]}


def measure_retention(conn, newest: date, keep_days: int, rows_before: dict) -> dict:
    """Retention through the pipeline's own step (src/iam_audit/evaluate/retention.py), on a connection of
    its own as the task uses it (it commits step by step); sizes after VACUUM."""
    from common import postgres

    from iam_audit.evaluate.retention import expire_history

    t0 = time.perf_counter()
    with postgres().connect(HISTORY_DB) as own:
        done = expire_history(own, newest, keep_days)
    seconds = time.perf_counter() - t0
    after = history_rows(conn)
    conn.commit()
    vacuum(conn)
    result = {"keep_days": keep_days, "kept_from": done.get("kept_from"), "seconds": round(seconds, 2),
              "rows_before": rows_before, "rows_after": after, "bytes_after_vacuum": size(conn, HISTORY_TABLES)}
    log(f"history: retention {result}")
    return result


def _backend_cpu_seconds(pid: int) -> float:
    """utime + stime of a PostgreSQL backend (the embedded server runs on this machine)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_tiles(conn, repeat: int = 3, timeout_s: int = 60) -> dict:
    """Best of `repeat` runs of each query (the first run warms the cache), in wall time and in the
    backend's CPU time; a query over timeout_s is reported as such.

    IAM_BENCH_FIFO=1 (root only) runs the backend under SCHED_FIFO while it is timed: on a machine
    shared with other work the query then runs without waiting for a CPU, so its wall time is
    what an idle machine would give (its CPU time is reported either way)."""
    import psycopg

    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.rollback()
    fifo = os.environ.get("IAM_BENCH_FIFO") == "1"
    if fifo:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(10))
    out = {}
    queries = {name: (sql, {}, []) for name, sql in TILES.items()}
    for filters in ({}, {"framework": "cis_v3.0.0"}):
        try:
            queries |= page_queries(conn, filters)
        except psycopg.Error as exc:
            conn.rollback()
            queries[f"page load {filters}"] = (f"-- {type(exc).__name__}: {exc}", {}, [])
    try:
        for name, (sql, params, settings) in queries.items():
            best = best_cpu = None
            rows = None
            try:
                conn.execute(f"SET statement_timeout = '{timeout_s}s'")
                for _ in range(repeat):
                    for setting in settings:  # SET LOCAL: until the rollback below
                        conn.execute(setting)
                    c0, t0 = _backend_cpu_seconds(pid), time.perf_counter()
                    rows = len(conn.execute(sql, params).fetchall())
                    elapsed, cpu = time.perf_counter() - t0, _backend_cpu_seconds(pid) - c0
                    best = elapsed if best is None else min(best, elapsed)
                    best_cpu = cpu if best_cpu is None else min(best_cpu, cpu)
                out[name] = {"seconds": round(best, 3), "cpu_seconds": round(best_cpu, 2), "rows": rows,
                             "sched_fifo": fifo}
                log(f"tile {name}: {best:.3f} s, backend CPU {best_cpu:.2f} s ({rows} rows)")
            except psycopg.Error as exc:
                out[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
                log(f"tile {name}: {out[name]['error']}")
            conn.rollback()
    finally:
        if fifo:
            os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
    return out


def finish_history(retention_keep: int | None = None, log_path: str | None = None) -> dict:
    """The measurements after the synthetic days, on the kept database of a run that was
    stopped before its last day (the machine's time ran out): upgrade it to the current
    schema as any existing database is (apply_schema), then sizes, tiles and retention.
    log_path: that run's log, for the sizes it logged every 10 days."""
    import re

    from common import postgres

    from iam_audit.database import apply_schema

    out: dict = {}
    if log_path:
        sizes = [(int(d), float(t), int(m)) for d, t, m in re.findall(
            r"history: day (\d+)/\d+, ([\d.]+) s, history (\d+) MiB", open(log_path).read())]
        out["logged_days"] = [{"day": d, "synthetic_day_seconds": t, "history_mib": m} for d, t, m in sizes]
        if len(sizes) >= 2:
            (d0, _, m0), (d1, _, m1) = sizes[0], sizes[-1]
            out["mib_per_added_day"] = {"from_day": d0, "to_day": d1, "mib": round((m1 - m0) / (d1 - d0), 2)}
    conn = postgres().connect(HISTORY_DB)
    t0 = time.perf_counter()
    out["schema_applied"] = apply_schema(conn, force=True, lock_timeout="300s")
    conn.commit()
    out["schema_upgrade_seconds"] = round(time.perf_counter() - t0, 2)
    vacuum(conn)
    out["days"] = conn.execute("SELECT count(DISTINCT snapshot_date) FROM aws_policy_scopes").fetchone()[0]
    out["bytes"] = {"history": size(conn, HISTORY_TABLES),
                    "per_table": {t: size(conn, [t]) for t in HISTORY_TABLES}}
    out["rows"] = history_rows(conn)
    log(f"history: finishing on {out['days']} days: {out['rows']}")
    out |= time_tiles_both(conn)
    if retention_keep:
        newest = conn.execute("SELECT max(snapshot_date) FROM aws_policy_scopes").fetchone()[0]
        conn.commit()
        out["retention"] = measure_retention(conn, newest, retention_keep, out["rows"])
    conn.close()
    return out


def retime_tiles() -> dict:
    from common import postgres

    conn = postgres().connect(HISTORY_DB)
    try:
        return time_tiles_both(conn)
    finally:
        conn.close()
