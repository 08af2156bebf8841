"""Small commands behind the Makefile: run once against the environment, the UI, SQL, stop."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from iam_audit.devenv.runner import airflow_bin, migrate, run_dag
from iam_audit.paths import PROJECT_ROOT


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
    missing = [name for name in ("AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_CONN_POSTGRES_DEFAULT",
                                 "AIRFLOW_VAR_IAM_AUDIT_BUCKET") if name not in env]
    if missing:
        print("Note: not set in the environment (the Airflow metadata database must then provide them): "
              + ", ".join(missing), file=sys.stderr)
    migrate(env)
    result = run_dag(env, logical_date=args.date, log_file=Path(env["AIRFLOW_HOME"]) / "run.log")
    print(f"DAG run {result.run_id}: {result.state} (log: {result.log_file})")
    if result.failed_tasks:
        print("failed tasks: " + ", ".join(result.failed_tasks))
    return 0 if result.state == "success" else 1


def backfill(argv: list[str]) -> int:
    """`make backfill START=... END=...`: re-evaluate stored snapshots day by day (replay: no IAM call)."""
    import json
    from datetime import date, timedelta

    parser = argparse.ArgumentParser(prog="make backfill")
    parser.add_argument("start", type=date.fromisoformat)
    parser.add_argument("end", type=date.fromisoformat)
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error(f"END {args.end} is before START {args.start}")
    env = _environment()
    migrate(env)
    failed = []
    day = args.start
    while day <= args.end:
        result = run_dag(env, logical_date=day.isoformat(), conf=json.dumps({"mode": "replay"}),
                         log_file=Path(env["AIRFLOW_HOME"]) / f"backfill-{day}.log", progress=None)
        failures = f" (failed: {', '.join(result.failed_tasks)})" if result.failed_tasks else ""
        print(f"{day}: {result.state}{failures}")
        if result.state != "success":
            failed.append(day)
        day += timedelta(days=1)
    return 1 if failed else 0


def _environment() -> dict[str, str]:
    """The environment's configuration; after `make demo`, the embedded stack's if the environment has none."""
    from iam_audit.devenv.stack import STATE_DIR

    env = dict(os.environ)
    env_file = STATE_DIR / "env.sh"
    if "AIRFLOW_CONN_AWS_DEFAULT" not in env and env_file.exists():
        print(f"Using the embedded services of `make demo` ({env_file})", file=sys.stderr)
        for line in env_file.read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'")
    env.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / ".devenv" / "airflow-run"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW__CORE__MAX_MAP_LENGTH", "10000")
    return env


def ui(argv: list[str]) -> int:
    """`make airflow`: airflow standalone on the embedded services."""
    from iam_audit.devenv import stack as stack_mod

    parser = argparse.ArgumentParser(prog="make airflow")
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    args = parser.parse_args(argv)
    stack, _ = stack_mod.up()
    migrate(stack.airflow_env())  # also creates the AWS pool, which the scheduler needs
    env = {**os.environ, **stack.airflow_env(), "AIRFLOW__API__PORT": str(args.port),
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
           # standalone starts its components as `airflow ...` from PATH
           "PATH": os.pathsep.join([str(Path(airflow_bin()).parent), os.environ.get("PATH", "")])}
    print(f"Airflow UI on http://127.0.0.1:{args.port} (all users are admins); DAG aws_iam_cis; Ctrl-C stops it.")
    return subprocess.call([airflow_bin(), "standalone"], env=env)


def sql(argv: list[str]) -> int:
    """`make sql Q=...`: run a query on the embedded compliance database with the bundled psql."""
    import pgserver

    from iam_audit.devenv.postgres import start_postgres
    from iam_audit.devenv.stack import COMPLIANCE_DB, STATE_DIR

    pg = start_postgres(STATE_DIR / "pg")
    psql = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
    cmd = [str(psql), "-h", pg.socket_dir, "-p", str(pg.port), "-U", "postgres", "-d", COMPLIANCE_DB]
    if argv and argv[0]:
        cmd += ["-c", argv[0]]
    return subprocess.call(cmd)


def stop(argv: list[str]) -> int:
    from iam_audit.devenv.stack import down

    down()
    print("embedded PostgreSQL and AWS emulator stopped")
    return 0


COMMANDS = {"backfill": backfill, "run": run_once, "ui": ui, "sql": sql, "stop": stop}

if __name__ == "__main__":
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
