"""Small commands behind the Makefile: run once against the environment, the UI, SQL, stop."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from iam_audit_dev import PROJECT_ROOT
from iam_audit_dev.devenv.runner import first_failure, migrate, run_dag


def run_once(argv: list[str]) -> int:
    """`make run`: one DAG run for today using only the environment's connections and variables."""
    parser = argparse.ArgumentParser(prog="make run")
    parser.add_argument("--date", help="logical date (YYYY-MM-DD); default: now")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / ".devenv" / "airflow-run"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW__CORE__MAX_MAP_LENGTH", "10000")  # one mapped extract per account, up to 10,000
    migrate(env)
    missing = missing_settings(env)
    if missing:
        print("make run: not started, the contract's required settings are missing (environment, secrets "
              "backend or Airflow metadata database):\n" + "\n".join(f"  - {m}" for m in missing), file=sys.stderr)
        return 2
    result = run_dag(env, logical_date=args.date, log_file=Path(env["AIRFLOW_HOME"]) / "run.log")
    print(f"DAG run {result.run_id}: {result.state} (log: {result.log_file})")
    if result.failed_tasks:
        print("failed tasks: " + ", ".join(result.failed_tasks))
        failure = first_failure(result.log_file)
        if failure:
            print(f"first failure, {failure.task_id} (log line {failure.line}):\n  "
                  + failure.message.replace("\n", "\n  "))
    return 0 if result.state == "success" else 1


# What a run cannot do without: (kind, name, environment variable that may carry it).
REQUIRED_SETTINGS = (("connection", "aws_default", "AIRFLOW_CONN_AWS_DEFAULT"),
                     ("connection", "postgres_default", "AIRFLOW_CONN_POSTGRES_DEFAULT"),
                     ("Variable", "iam_audit_bucket", "AIRFLOW_VAR_IAM_AUDIT_BUCKET"))


def missing_settings(env: dict[str, str]) -> list[str]:
    """The required connections and Variables that neither the environment nor Airflow's secrets
    backends and metadata database provide, looked up as the run's tasks will look them up."""
    os.environ.update(env)  # Airflow reads its configuration (AIRFLOW_HOME, the database) at import
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models import Connection, Variable

    missing = []
    for kind, name, variable in REQUIRED_SETTINGS:
        try:
            found = Connection.get_connection_from_secrets(name) if kind == "connection" else Variable.get(name, None)
        except AirflowNotFoundException:
            found = None
        if found is None:
            missing.append(f"{kind} {name} (e.g. {variable} in the environment)")
    return missing


REPROCESS_CHOICES = ("completed", "failed", "none")


def backfill(argv: list[str]) -> int:
    """`make backfill START=... END=... [REPROCESS=...]`: an Airflow backfill that re-evaluates the
    stored snapshots of each date (mode=replay: no IAM call), run by a scheduler of its own."""
    from datetime import date

    from iam_audit_dev.devenv import services as services_mod

    parser = argparse.ArgumentParser(prog="make backfill")
    parser.add_argument("start", type=date.fromisoformat)
    parser.add_argument("end", type=date.fromisoformat)
    parser.add_argument("--reprocess", choices=REPROCESS_CHOICES, default="completed",
                        help="dates that already have a run: completed = run them again (the run is cleared and "
                             "rerun, never deleted), failed = only those whose run failed, none = leave them")
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error(f"END {args.end} is before START {args.start}")
    env = _environment()
    home = Path(env["AIRFLOW_HOME"])
    if services_mod.running(home):
        print(f"`make airflow` is running on {home}: use its Backfill form (Trigger ▸ Backfill, "
              "param mode=replay), or stop it first", file=sys.stderr)
        return 2
    migrate(env)
    print(f"Starting an Airflow scheduler, DAG processor and API server (logs: {home / 'services'}) ...")
    services = services_mod.start(env, services_mod.BACKFILL_COMPONENTS, schedule=False)
    try:
        services.wait_ready()
        return _run_backfill(services, args.start, args.end, args.reprocess)
    except KeyboardInterrupt:
        print("interrupted: stopping Airflow", file=sys.stderr)
        return 130
    except services_mod.ServicesError as exc:
        print(f"make backfill: {exc}", file=sys.stderr)
        return 1
    finally:
        services.stop()


def _run_backfill(services, start, end, reprocess: str) -> int:
    import time
    from datetime import timedelta

    from iam_audit_dev.devenv.runner import DAG_ID

    dag = services.api("GET", f"/dags/{DAG_ID}")
    was_paused = dag["is_paused"]
    body = {"dag_id": DAG_ID, "from_date": f"{start}T00:00:00Z", "to_date": f"{end}T00:00:00Z",
            "reprocess_behavior": reprocess, "dag_run_conf": {"mode": "replay"}, "max_active_runs": 1}
    runs_url = (f"/dags/{DAG_ID}/dagRuns?logical_date_gte={start}T00:00:00Z"
                f"&logical_date_lte={end}T00:00:00Z&limit=1000&order_by=-id")
    existing = {}
    for run in services.api("GET", runs_url)["dag_runs"]:
        existing.setdefault(run["logical_date"][:10], run)
    planned = {row["logical_date"][:10]
               for row in services.api("POST", "/backfills/dry_run", body)["backfills"] if row["logical_date"]}
    _complete_stale_backfills(services)
    if was_paused:  # as the UI's "Unpause on trigger"; this scheduler creates no scheduled runs meanwhile
        services.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
    backfill, finished = None, False
    try:
        backfill = services.api("POST", "/backfills", body, attempts=1) if planned else None
        if backfill:
            print(f"Backfill {backfill['id']} of {DAG_ID}: {len(planned)} date(s), reprocess={reprocess}, "
                  "mode=replay (Backfills tab of the DAG in `make airflow`)")
        outcomes = {}
        while backfill and len(outcomes) < len(planned):
            services.check_alive()
            for run in services.api("GET", runs_url + "&run_type=backfill")["dag_runs"]:
                day = run["logical_date"][:10]
                if (day in planned and day not in outcomes and run["state"] in ("success", "failed")
                        and run.get("backfill_id") in (None, backfill["id"])):
                    outcomes[day] = _date_report(services, run)
                    print(outcomes[day]["line"], flush=True)
            time.sleep(2)
        finished = True
    finally:
        if backfill:  # interrupted: cancelled at once, so that the next backfill is not refused
            _complete_backfill(services, backfill["id"], wait=finished)
        if was_paused:
            services.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": True})
    day, bad = start, []
    while day <= end:
        if day.isoformat() not in planned:
            run = existing.get(day.isoformat())
            if run and run["state"] not in ("success", "failed"):
                print(f"{day}: not run: run {run['dag_run_id']} of this date is still {run['state']}")
                bad.append(day.isoformat())
            else:
                state = f"{run['state']} run {run['dag_run_id']}" if run else "run"
                print(f"{day}: kept the {state} of this date (REPROCESS={reprocess})")
        elif not outcomes[day.isoformat()]["ok"]:
            bad.append(day.isoformat())
        day += timedelta(days=1)
    if bad:
        print(f"{len(bad)} date(s) not re-evaluated: {', '.join(bad)}")
    return 1 if bad else 0


# Airflow's scheduler marks a backfill complete on a 30 s timer once none of its runs is queued or
# running; until then the record stays open and Airflow refuses any other backfill of the DAG.
BACKFILL_COMPLETION_WAIT_SECONDS = 40


def _complete_backfill(services, backfill_id: int, wait: bool = True) -> None:
    """Leave the backfill's record complete before this command stops its scheduler: wait for the scheduler
    to mark it, then (its runs having ended, or the command interrupted) complete it through the API as the
    UI's Cancel button does, which also fails any of its runs still queued."""
    import time

    from iam_audit_dev.devenv.services import ServicesError

    deadline = time.monotonic() + (BACKFILL_COMPLETION_WAIT_SECONDS if wait else 0)
    while time.monotonic() < deadline:
        if services.api("GET", f"/backfills/{backfill_id}").get("completed_at"):
            return
        services.check_alive()
        time.sleep(2)
    try:
        services.api("PUT", f"/backfills/{backfill_id}/cancel", attempts=1)
    except ServicesError as exc:
        if "HTTP 409" not in str(exc):  # completed meanwhile by the scheduler
            raise


def _complete_stale_backfills(services) -> None:
    """A backfill left open by an earlier command that was killed before it could complete it: no
    scheduler works on it any more (`make airflow` is not running), and it blocks every new backfill."""
    from iam_audit_dev.devenv.runner import DAG_ID

    for old in services.api("GET", f"/backfills?dag_id={DAG_ID}&limit=100&order_by=-id")["backfills"]:
        if not old.get("completed_at"):
            print(f"Completing backfill {old['id']} (from {old['from_date'][:10]} to {old['to_date'][:10]}), "
                  "left open by an earlier command that was stopped", flush=True)
            _complete_backfill(services, old["id"], wait=False)


def _xcom(services, run_id: str, task_id: str):
    from iam_audit_dev.devenv.runner import DAG_ID
    from iam_audit_dev.devenv.services import ServicesError

    try:
        return services.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}"
                                   "/xcomEntries/return_value?deserialize=true")["value"]
    except ServicesError:
        return None


def _task_error(services, run_id: str, task_id: str) -> str:
    """The error a failed task logged, read through the API as the UI reads it."""
    from iam_audit_dev.devenv.runner import DAG_ID
    from iam_audit_dev.devenv.services import ServicesError

    try:
        ti = services.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")
        logs = services.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/logs/"
                                   f"{max(ti['try_number'], 1)}?full_content=true")
    except ServicesError as exc:
        return f"(task log not readable: {exc})"
    entries = [e for e in logs.get("content", []) if isinstance(e, dict)]
    for entry in reversed(entries):
        for detail in entry.get("error_detail") or []:
            return f"{detail.get('exc_type')}: {detail.get('exc_value')}"
    errors = [e.get("event", "") for e in entries if e.get("level") == "error"]
    return errors[-1] if errors else "(no error in the task log)"


def _date_report(services, run: dict) -> dict:
    from urllib.parse import quote

    from iam_audit_dev.devenv.runner import DAG_ID

    run_id, day = run["dag_run_id"], run["logical_date"][:10]
    accounts = _xcom(services, quote(run_id, safe=""), "discover_accounts") or []
    loaded = _xcom(services, quote(run_id, safe=""), "load_staging") or {}
    totals = _xcom(services, quote(run_id, safe=""), "summarize") or {}
    skipped = [a["account_id"] for a in accounts if a.get("missing_snapshot")]
    replayed = loaded.get("loaded", 0)
    verdicts = sum(totals.get(k, 0) for k in ("pass", "fail", "error"))
    ok = run["state"] == "success" and replayed > 0
    line = (f"{day}: {run['state']}: {replayed} account(s) replayed, {verdicts} verdicts written"
            + (f" ({totals.get('pass', 0)} pass, {totals.get('fail', 0)} fail, {totals.get('error', 0)} error)"
               if verdicts else ""))
    if skipped:
        line += f"; {len(skipped)} skipped (no stored snapshot): {', '.join(skipped)}"
    if not ok:
        failed = [t["task_id"] for t in services.api(
            "GET", f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances?state=failed")["task_instances"]
            if t["task_id"] != "fail_run_on_task_failure"]
        if failed:
            line += f"\n    {failed[0]} failed: {_task_error(services, quote(run_id, safe=''), failed[0])}"
        elif replayed == 0:
            line += "\n    nothing was replayed"
    log_dir = services.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    line += f"\n    task logs: {log_dir}"
    return {"ok": ok, "line": line, "replayed": replayed, "skipped": skipped, "verdicts": verdicts}


def _environment() -> dict[str, str]:
    """The environment's configuration; without one, the embedded stack's (started or reused)."""
    env = dict(os.environ)
    if "AIRFLOW_CONN_AWS_DEFAULT" not in env:
        from iam_audit_dev.devenv import stack as stack_mod

        print(f"Using the embedded PostgreSQL and AWS emulator ({stack_mod.STATE_DIR})", file=sys.stderr)
        stack, _ = stack_mod.up()
        env.update(stack.airflow_env())
    env.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / ".devenv" / "airflow-run"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW__CORE__MAX_MAP_LENGTH", "10000")
    return env


def ui(argv: list[str]) -> int:
    """`make airflow`: scheduler, DAG processor, triggerer and API server on the embedded services."""
    import signal
    import time

    from iam_audit_dev.devenv import services as services_mod
    from iam_audit_dev.devenv import stack as stack_mod

    parser = argparse.ArgumentParser(prog="make airflow")
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    parser.add_argument("--grace", type=float, default=10, help="seconds between SIGTERM and SIGKILL on Ctrl-C")
    args = parser.parse_args(argv)
    stack, _ = stack_mod.up()
    env = {**stack.airflow_env(), "AIRFLOW_CONN_COMPLIANCE_READER": _compliance_page_conn(stack)}
    migrate(env)  # also creates the AWS pool, which the scheduler needs
    services = services_mod.start(env, services_mod.UI_COMPONENTS, port=args.port)
    # SIGTERM (e.g. from a process manager) stops the components like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        services.wait_ready()
        print(f"""Airflow UI on {services.url}  (bound to 127.0.0.1 only: every visitor is an admin, no login)
  DAG aws_iam_cis starts paused. "Unpause on trigger" in the Trigger form unpauses it: one click, one
  run; the daily schedule starts at the next midnight (UTC) if the DAG never had a scheduled or backfill
  run, else with the run of the latest midnight at once (untick the box to avoid it).
  Logs of the components: {services.home / 'services'}. Ctrl-C stops Airflow; `make stop` also stops
  PostgreSQL and the emulator.""", flush=True)
        while True:
            services.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        print(f"\nstopping Airflow (SIGTERM, SIGKILL after {args.grace:.0f} s) ...", flush=True)
        return 0
    except services_mod.ServicesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        services.stop(grace=args.grace)
        stack_mod.save_s3(stack.state_dir, stack.emulator_url)
        print("Airflow stopped; PostgreSQL and the AWS emulator keep running (make stop)", flush=True)


def _compliance_page_conn(stack) -> str:
    """The Compliance page's own connection: a login in the read-only role compliance_reader (the role is
    created here when no run has created it yet; the first run's schema gives it its grants)."""
    with stack.postgres.connect(autocommit=True) as conn:
        conn.execute("DO $$ BEGIN CREATE ROLE compliance_reader NOLOGIN; "
                     "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    login = "compliance_page"
    password = stack.postgres.ensure_login(login, "compliance_reader", stack.state_dir / f"{login}.password")
    return json.dumps({**json.loads(stack.postgres.airflow_conn_json(stack.database)),
                       "login": login, "password": password})


def sql(argv: list[str]) -> int:
    """`make sql Q=...`, `make sql F=file.sql` or `make sql < file.sql`: psql on the embedded database."""
    from iam_audit_dev.devenv.postgres import psql_path, start_postgres
    from iam_audit_dev.devenv.stack import COMPLIANCE_DB, STATE_DIR

    parser = argparse.ArgumentParser(prog="make sql")
    parser.add_argument("-c", "--command", default="", help="one query (Q=)")
    parser.add_argument("-f", "--file", default="", help="a file of queries (F=)")
    args = parser.parse_args(argv)
    if args.command and args.file:
        parser.error("give either Q= or F=, not both")
    if args.file and not Path(args.file).is_file():
        parser.error(f"F={args.file}: no such file")
    pg = start_postgres(STATE_DIR / "pg")
    cmd = [str(psql_path()), "-h", pg.socket_dir, "-p", str(pg.port), "-U", "postgres", "-d", COMPLIANCE_DB,
           "-v", "ON_ERROR_STOP=1"]
    if args.command:
        cmd += ["-c", args.command]
    elif args.file:
        cmd += ["-f", args.file]
    elif not sys.stdin.isatty():
        cmd += ["-f", "-"]  # `make sql < query.sql`
    return subprocess.call(cmd)


def export_ocsf(argv: list[str]) -> int:
    """`make export-ocsf DATE=YYYY-MM-DD [OUT=file]`: a stored date's verdicts as OCSF findings."""
    from iam_audit.export.ocsf import EXPORT_NAME, NothingToExport, export_to_file
    from iam_audit_dev.devenv.postgres import start_postgres
    from iam_audit_dev.devenv.stack import COMPLIANCE_DB, STATE_DIR

    parser = argparse.ArgumentParser(prog="make export-ocsf")
    parser.add_argument("date", type=date.fromisoformat, help="snapshot date YYYY-MM-DD (DATE=)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output file (OUT=; default .devenv/<date>-{EXPORT_NAME})")
    args = parser.parse_args(argv)
    out = args.out or STATE_DIR / f"{args.date}-{EXPORT_NAME}"
    pg = start_postgres(STATE_DIR / "pg")
    with pg.connect(COMPLIANCE_DB) as conn:
        try:
            count = export_to_file(conn, args.date, out)
        except NothingToExport as exc:
            print(f"make export-ocsf: {exc}", file=sys.stderr)
            return 2
    print(f"{count} OCSF findings of {args.date} in {out}")
    return 0


def evidence(argv: list[str]) -> int:
    """`make evidence DATE=YYYY-MM-DD [FRAMEWORK=cis_v3.0.0] [OUT=dir]`: a stored date's evidence pack."""
    from iam_audit.export.evidence import EvidenceIntegrityError, build_pack
    from iam_audit.export.ocsf import NothingToExport
    from iam_audit.ingest.raw_store import S3RawStore
    from iam_audit_dev.devenv import stack as stack_mod

    parser = argparse.ArgumentParser(prog="make evidence")
    parser.add_argument("date", type=date.fromisoformat, help="snapshot date YYYY-MM-DD (DATE=)")
    parser.add_argument("--framework", default=None, help="one framework version, e.g. cis_v3.0.0 (FRAMEWORK=)")
    parser.add_argument("--out", type=Path, default=stack_mod.STATE_DIR / "evidence", help="output folder (OUT=)")
    args = parser.parse_args(argv)
    stack, _ = stack_mod.up()
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = stack.aws_conn_json()
    store = S3RawStore(stack.bucket)
    with stack.postgres.connect(stack.database) as conn:
        try:
            archive = build_pack(conn, store.get, "iam", args.date, args.out, framework=args.framework,
                                 url=store.url)
        except (NothingToExport, EvidenceIntegrityError, ValueError) as exc:
            print(f"make evidence: {exc}", file=sys.stderr)
            return 2
    print(f"evidence pack of {args.date}: {archive.with_suffix('')}/ and {archive}")
    return 0


def stop(argv: list[str]) -> int:
    """`make stop`: Airflow of `make airflow`, the emulator (its S3 saved to disk) and PostgreSQL."""
    from iam_audit_dev.devenv.stack import STATE_DIR, down, status

    before = {name for name, what in status().items() if what}
    left = down()
    for name in sorted(before - {n for n, what in left.items() if what}):
        print(f"stopped: {name}")
    still = {name: what for name, what in left.items() if what}
    for name, what in still.items():
        print(f"STILL RUNNING: {name} ({what})", file=sys.stderr)
    if not before:
        print(f"nothing was running ({STATE_DIR})")
    return 1 if still else 0


def preflight(argv: list[str]) -> int:
    """`make preflight`: the configuration of `make run` checked before any audit (iam_audit.preflight)."""
    argparse.ArgumentParser(prog="make preflight").parse_args(argv)
    env = _environment()
    missing = missing_settings(env)
    if missing:
        print("make preflight: the contract's required settings are missing (environment, secrets backend or "
              "Airflow metadata database):\n" + "\n".join(f"  - {m}" for m in missing), file=sys.stderr)
        return 2
    from iam_audit.preflight import format_report, run_preflight

    report = run_preflight()
    print(format_report(report))
    return 0 if report.ok else 1


COMMANDS = {"evidence": evidence, "export-ocsf": export_ocsf, "backfill": backfill, "run": run_once, "ui": ui,
            "sql": sql, "stop": stop, "preflight": preflight}

if __name__ == "__main__":
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
