"""`make demo`: embedded PostgreSQL + emulated AWS organisation, one DAG run, a compliance summary."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from iam_audit_dev import PROJECT_ROOT
from iam_audit_dev.devenv import stack as stack_mod
from iam_audit_dev.devenv.history import HISTORY_DAYS
from iam_audit_dev.devenv.runner import migrate, run_dag


def _shown(path) -> str:
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


@contextlib.contextmanager
def _output_to(path):
    """Standard output and error of this process (Airflow's loggers write to them directly) appended to a file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _seed_history(stack, env: dict[str, str], today, days: int) -> None:
    """Earlier snapshots with scripted changes, evaluated by the pipeline's replay (devenv/history.py)."""
    from iam_audit_dev.devenv import history

    started = time.monotonic()
    os.environ.update(env)  # the DAG's task bodies read the connections and Variables from the environment
    with stack.postgres.connect(stack.database) as conn:
        have = {d for (d,) in conn.execute("SELECT snapshot_date FROM aws_policy_snapshots").fetchall()}
    written = history.write_history(stack.boto3_client("s3"), stack.bucket, today, days, keep=have)
    print(f"History: {len(written)} earlier daily snapshot(s) derived from today's, replayed by the pipeline "
          f"(keys rotated {history.ROTATED_DAYS_AGO} days ago; since yesterday a console user lost MFA and "
          "password policies were strengthened) ...", flush=True)
    log_path = stack.state_dir / "demo-history.log"
    for day in written:
        with _output_to(log_path):  # the task bodies' log lines, as a run's task logs
            loaded = history.replay(day, lambda: stack.postgres.connect(stack.database))
        print(f"  {day}: {loaded['loaded']} account(s) replayed", flush=True)
    if written:
        print(f"  (log: {_shown(log_path)})")
    with stack.postgres.connect(stack.database) as conn:
        muted = history.mute_one_finding(conn, today)
    if muted:
        print(f"  exception: {muted['framework']} {muted['check_id']} on {muted['resource_id']} muted until "
              f"{muted['expires_on']}", flush=True)
    print(f"History ready in {time.monotonic() - started:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=5, help="member accounts besides the management account")
    parser.add_argument("--users", type=int, default=8, help="IAM users per account")
    parser.add_argument("--history-days", type=int, default=HISTORY_DAYS,
                        help="earlier daily snapshots to seed and replay (0: none)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    print(f"Starting embedded PostgreSQL and the AWS emulator, seeding 1 + {args.accounts} accounts ...")
    stack, manifest = stack_mod.up(accounts=args.accounts, users=args.users)
    for account in manifest["accounts"]:
        print(f"  {account['id']}  {account['name']:<16} profile {account['profile']}")
    env = stack.airflow_env()
    print("Preparing the Airflow metadata database ...")
    migrate(env)
    print("Running DAG aws_iam_cis (airflow dags test) ...")
    result = run_dag(env, log_file=stack.state_dir / "demo-dag-run.log")
    print(f"DAG run {result.run_id}: {result.state} in {time.monotonic() - started:.0f} s "
          f"(log: {_shown(result.log_file)})")
    if result.failed_tasks:
        print("  failed tasks: " + ", ".join(result.failed_tasks))

    from iam_audit.reporting.summary import build_summary, format_manual_evidence, format_summary

    with stack.postgres.connect(stack.database) as conn:
        row = conn.execute("SELECT max(snapshot_date) FROM aws_policy_snapshots").fetchone()
        if not row or row[0] is None:
            print("No verdicts were written; see the log above.")
            return 1
        if args.history_days and result.state == "success":
            _seed_history(stack, env, row[0], args.history_days)
        print()
        snapshot_date = row[0]
        raw = f"s3://{stack.bucket}/iam/snapshot_date={snapshot_date}/"
        print(format_summary(build_summary(conn, snapshot_date), raw_location=f"{raw} (on the emulator)"))
        evidence = format_manual_evidence(conn, snapshot_date)
        if evidence:
            print("\n" + evidence)
        from iam_audit.alerting.alerts import preview

        print()
        print(preview(conn, snapshot_date.isoformat()))
        from iam_audit.reporting.report import write_report

        report_path = stack.state_dir / "report.html"
        write_report(conn, row[0], report_path)
        from iam_audit.export.ocsf import EXPORT_NAME, export_to_file

        ocsf_path = stack.state_dir / EXPORT_NAME
        ocsf_count = export_to_file(conn, snapshot_date, ocsf_path)
        from iam_audit.export.evidence import build_pack
        from iam_audit.ingest.raw_store import S3RawStore

        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = stack.aws_conn_json()
        raw_store = S3RawStore(stack.bucket)
        evidence_zip = build_pack(conn, raw_store.get, "iam", snapshot_date, stack.state_dir / "evidence",
                                  url=raw_store.url)
    bi_login = "bi_reader"  # a login in role compliance_reader, for BI tools over TCP
    bi_password = stack.postgres.ensure_login(bi_login, "compliance_reader", stack.state_dir / f"{bi_login}.password")
    example = 'make sql Q="SELECT framework, check_id, status, count(*) FROM aws_policy_results GROUP BY 1,2,3"'
    print(f"""
Where the data is
  Verdicts   PostgreSQL view aws_policy_results (database {stack.database}, socket dir {stack.postgres.socket_dir})
             {example}
  BI tools   {stack.postgres.tcp_uri(bi_login, bi_password, stack.database)}
             (read-only login in role compliance_reader; make superset serves a dashboard on it)
  Staging    schema iam_stage (credential_report, users, roles, managed_policies, ...)
  Raw JSON   {raw}account_id=.../ on the emulator at {stack.emulator_url}
             (kept in {_shown(stack.state_dir / 'emulator-s3')} when the emulator stops)
  Report     {_shown(report_path)} (open it in a browser; the DAG also stores it next to the raw data in S3)
  OCSF       {_shown(ocsf_path)}: {ocsf_count} Compliance Findings (OCSF 1.6.0, JSON Lines, gzip);
             the DAG's export_ocsf task writes the same file to {raw}exports/ocsf/
  Evidence   {_shown(evidence_zip.with_suffix(''))}/ (CSV, summary.html to print, manifest of hashed raw
             objects) and its .zip; make evidence DATE=YYYY-MM-DD [FRAMEWORK=cis_v3.0.0] for any stored date
  Airflow    make airflow  (UI on the same services)  ·  make stop  (stop the embedded services)""")
    stack_mod.save_s3(stack.state_dir, stack.emulator_url)
    return 0 if result.state == "success" else 2


if __name__ == "__main__":
    sys.exit(main())
