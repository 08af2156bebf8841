"""Intervals a day with no change: the synthetic snapshot (synthetic.sql) on two days.

Day 1 is staged with synthetic.sql; day 2 is a copy with every extraction time (and
credential report time) one day later and nothing else changed, as a daily run of an
idle organisation would stage it. Every check of the catalogue runs on both days with
the check files of a given commit (default: the work tree), through the real history
write. Prints the history intervals day 2 started, per logic, and how many of them
keep the status (the reason alone changed). With reasons free of ages, only resources
whose date crossed a threshold during the day start one.

    cd bench && ../.venv/bin/python reason_stability.py \
        --accounts 30 --users 100 [--commit c3b906a]
"""

from __future__ import annotations

import argparse
import subprocess
import tarfile
import tempfile
import time
from datetime import date
from io import BytesIO
from pathlib import Path

import jinja2
from common import BENCH_DIR, fresh_database

DAY_1, DAY_2 = date(2026, 11, 1), date(2026, 11, 2)


def check_templates(commit: str | None) -> jinja2.Environment:
    sql_dir = BENCH_DIR.parent / "src" / "iam_audit" / "sql"
    if commit:
        tree = subprocess.run(["git", "-C", str(BENCH_DIR.parent), "archive", commit, "src/iam_audit/sql"],
                              check=True, capture_output=True).stdout
        target = Path(tempfile.mkdtemp(prefix="reason-stability-"))
        with tarfile.open(fileobj=BytesIO(tree)) as archive:
            archive.extractall(target, filter="data")
        sql_dir = target / "src" / "iam_audit" / "sql"
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(sql_dir)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)


def stage_two_days(conn, accounts: int, users: int) -> None:
    from iam_audit.ingest.load import STAGING_TABLES

    sql = (BENCH_DIR / "synthetic.sql").read_text()
    sql = sql.replace("{accounts}", str(accounts)).replace("{users}", str(users)).replace("{date}", str(DAY_1))
    with conn.transaction():
        conn.execute(sql)
    with conn.transaction():
        for table in (*STAGING_TABLES, "organization_accounts"):
            conn.execute(f"CREATE TEMP TABLE _copy ON COMMIT DROP AS SELECT * FROM iam_stage.{table} "  # noqa: S608
                         "WHERE snapshot_date = %s", (DAY_1,))
            conn.execute("UPDATE _copy SET snapshot_date = %s", (DAY_2,))
            conn.execute(f"INSERT INTO iam_stage.{table} SELECT * FROM _copy")  # noqa: S608
            conn.execute("DROP TABLE _copy")
        conn.execute("UPDATE iam_stage.accounts SET extracted_at = extracted_at + interval '1 day' "
                     "WHERE snapshot_date = %s", (DAY_2,))
        conn.execute("UPDATE iam_stage.credential_report SET generated_time = generated_time + interval '1 day' "
                     "WHERE snapshot_date = %s", (DAY_2,))


def main() -> None:
    from iam_audit.database import check_parameters, split_statements
    from iam_audit.evaluate.catalogue import load_catalogue

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=30)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--commit", help="take src/iam_audit/sql/ from this commit instead of the work tree")
    args = parser.parse_args()
    env = check_templates(args.commit)
    conn = fresh_database("iam_bench_reason_stability")
    stage_two_days(conn, args.accounts, args.users)
    catalogue = load_catalogue()
    started = time.perf_counter()
    for day in (DAY_1, DAY_2):
        params = check_parameters(day, f"stability-{day}", list(catalogue.frameworks))
        for check in catalogue.checks:
            with conn.cursor() as cur:
                for statement in split_statements(env.get_template(f"checks/{check.logic}.sql").render()):
                    cur.execute(statement, params)
            conn.commit()
    current = conn.execute("SELECT count(*) FROM aws_policy_verdicts WHERE valid_to = 'infinity'").fetchone()[0]
    rows = conn.execute("""
        SELECT v.control_logic, count(*), count(*) FILTER (WHERE p.status = n.status)
        FROM aws_policy_verdicts n
        JOIN aws_policy_variants v USING (variant_id)
        LEFT JOIN aws_policy_verdicts p
          ON p.variant_id = n.variant_id AND p.account_id = n.account_id
         AND p.resource_id = n.resource_id AND p.valid_from = %s
        WHERE n.valid_from = %s
        GROUP BY 1 ORDER BY 2 DESC""", (DAY_1, DAY_2)).fetchall()
    print(f"src/iam_audit/sql/ of {args.commit or 'the work tree'}, {args.accounts} x {args.users}: "
          f"{current} current intervals; day 2 started {sum(r[1] for r in rows)} "
          f"({sum(r[2] for r in rows)} with an unchanged status: the reason alone changed); "
          f"checks of both days {time.perf_counter() - started:.0f} s")
    for logic, count, same_status in rows:
        print(f"  {logic}: {count} started, {same_status} with an unchanged status")
    conn.close()


if __name__ == "__main__":
    main()
