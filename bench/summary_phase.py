"""Time the DAG's summary phase builders (build_summary, the HTML report) on a synthetic database.

  build DB ACCOUNTS USERS   two days of bench/synthetic.sql (day 2: 2 % of MFA flags flipped, two
                            accounts without credential report, one throttled), every check run on
                            both, four exceptions (an account's user pattern, a check in one
                            framework, a whole account, a pattern in every account)
  time DB [--earlier]       build_summary and build_report_html of day 2, best of --repeat: wall
                            time, CPU time of the PostgreSQL backend (/proc/<pid>/stat) and per
                            statement; --earlier times the statements kept as the reference in
                            tests/history/test_summary_report.py instead

  PYTHONPATH=. .venv/bin/python bench/summary_phase.py build sum300 300 100
  PYTHONPATH=. .venv/bin/python bench/summary_phase.py time sum300 [--earlier]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAY1, DAY2 = date(2026, 11, 1), date(2026, 11, 2)


def server(pg_dir: str):
    from iam_audit_dev.devenv.postgres import start_postgres

    return start_postgres(pg_dir)


def build(pg, name: str, accounts: int, users: int) -> None:
    import psycopg

    from iam_audit.database import apply_schema, run_check
    from iam_audit.evaluate.catalogue import load_catalogue
    from iam_audit.ingest.load import STAGING_TABLES

    with psycopg.connect(pg.conninfo(), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    conn = pg.connect(name)
    apply_schema(conn)
    sql = (ROOT / "bench" / "synthetic.sql").read_text()
    with conn.transaction():
        conn.execute(sql.replace("{accounts}", str(accounts)).replace("{users}", str(users))
                     .replace("{date}", DAY1.isoformat()))
    with conn.transaction():
        for table in STAGING_TABLES:
            conn.execute(f"CREATE TEMP TABLE _copy ON COMMIT DROP AS SELECT * FROM iam_stage.{table} "  # noqa: S608
                         "WHERE snapshot_date = %s", (DAY1,))
            conn.execute("UPDATE _copy SET snapshot_date = %s", (DAY2,))
            conn.execute(f"INSERT INTO iam_stage.{table} SELECT * FROM _copy")  # noqa: S608
            conn.execute("DROP TABLE _copy")
        conn.execute("UPDATE iam_stage.credential_report SET mfa_active = NOT mfa_active "
                     "WHERE snapshot_date = %s AND hashtext(account_id || user_name) %% 50 = 0", (DAY2,))
        conn.execute("UPDATE iam_stage.extraction_status SET status = 'error', error_code = 'AccessDenied', "
                     "error_message = 'not authorized' WHERE snapshot_date = %s "
                     "AND account_id IN ('100000000002', '100000000007') AND dataset = 'credential_report'", (DAY2,))
        conn.execute("UPDATE iam_stage.extraction_status SET status = 'error', error_code = 'Throttling', "
                     "error_message = 'rate exceeded' WHERE snapshot_date = %s AND account_id = '100000000005' "
                     "AND dataset = 'access_keys'", (DAY2,))
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    conn.autocommit = False
    for day in (DAY1, DAY2):
        t0 = time.perf_counter()
        for check in load_catalogue().checks:
            run_check(conn, check.logic, day, f"run-{day}")
        print(f"checks of {day}: {time.perf_counter() - t0:.1f} s", flush=True)
    conn.execute("ALTER TABLE aws_policy_exceptions DISABLE TRIGGER aws_policy_exceptions_guard")
    for account, framework, check_id, pattern in [("100000000001", None, None, "%:user/user-1%"),
                                                  (None, "cis_v1.2.0", "1.10", None),
                                                  ("100000000003", None, None, None),
                                                  (None, None, None, "%user-7")]:
        conn.execute("INSERT INTO aws_policy_exceptions (account_id, framework, check_id, resource_pattern, reason, "
                     "expires_on, created_at) VALUES (%s, %s, %s, %s, 'accepted', '2026-12-31', "
                     "'2026-10-01 12:00+00')", (account, framework, check_id, pattern))
    conn.execute("ALTER TABLE aws_policy_exceptions ENABLE TRIGGER aws_policy_exceptions_guard")
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    print("intervals, evaluations:", conn.execute(
        "SELECT (SELECT count(*) FROM aws_policy_verdicts), (SELECT count(*) FROM aws_policy_evaluations)").fetchone())


class Timed:
    """The connection, with each statement's wall and backend CPU time logged."""

    def __init__(self, conn, cpu):
        self.conn, self.cpu, self.log = conn, cpu, []

    def execute(self, sql, params=()):
        t0, c0 = time.perf_counter(), self.cpu()
        cur = self.conn.execute(sql, params)
        rows = cur.fetchall() if cur.description else None
        self.log.append((time.perf_counter() - t0, self.cpu() - c0, " ".join(sql.split())[:100]))
        return _Result(cur.description, rows)


class _Result:
    def __init__(self, description, rows):
        self.description, self.rows = description, rows

    def fetchall(self):
        return self.rows

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def __iter__(self):
        return iter(self.rows)


def time_builders(pg, name: str, day: str, repeat: int, earlier: bool) -> None:
    from iam_audit.reporting import report, summary

    if earlier:
        sys.path.insert(0, str(ROOT / "tests"))
        from history.test_summary_report import earlier_report_data, earlier_summary

        builders = {"summary": lambda c: earlier_summary(c, day),
                    "report": lambda c: report.render_report(earlier_report_data(c, day))}
    else:
        builders = {"summary": lambda c: summary.build_summary(c, day),
                    "report": lambda c: report.build_report_html(c, day)}
    conn = pg.connect(name)
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    for label, build_one in builders.items():
        best = None
        for _ in range(repeat):
            timed = Timed(conn, cpu)
            t0, c0 = time.perf_counter(), cpu()
            build_one(timed)
            run = (time.perf_counter() - t0, cpu() - c0, timed.log)
            conn.rollback()
            best = run if best is None or run[0] < best[0] else best
        print(f"{'earlier' if earlier else 'current'} {label}: wall {best[0]:.2f} s, "
              f"backend CPU {best[1]:.2f} s (best of {repeat}), load {os.getloadavg()[0]:.1f}")
        for wall, cpu_s, sql in best[2]:
            print(f"   {wall:7.2f} s  cpu {cpu_s:6.2f} s  {sql}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-dir", default=str(ROOT / "bench" / ".state" / "pg"))
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("database")
    b.add_argument("accounts", type=int)
    b.add_argument("users", type=int)
    t = sub.add_parser("time")
    t.add_argument("database")
    t.add_argument("--day", default=DAY2.isoformat())
    t.add_argument("--repeat", type=int, default=3)
    t.add_argument("--earlier", action="store_true")
    args = parser.parse_args()
    pg = server(args.pg_dir)
    if args.command == "build":
        build(pg, args.database, args.accounts, args.users)
    else:
        time_builders(pg, args.database, args.day, args.repeat, args.earlier)


if __name__ == "__main__":
    main()
