"""Stage `dagscale`: the whole aws_iam_cis DAG against the AWS stand-in, at N mapped accounts.

Airflow is started the project's way (iam_audit.devenv.stack.Stack.airflow_env, runner.migrate,
devenv.services.start: scheduler, DAG processor, API server with the executor services.py
configures), on the benchmark's PostgreSQL (metadata database and compliance database of their
own); one run is triggered through the REST API and timed until it ends. Reported, from the task
instances' start and end times in the metadata database:
  * wall time per phase: discovery (plan_run, prepare_database, discover_accounts), mapping (end of
    discovery to the first extract_account start), extraction (all extract_account instances),
    load (load_staging), checks (check_*), summary (summarize, publish_report, expire_history);
  * scheduler overhead per mapped task instance: slot-seconds of the extraction phase not spent
    inside a task instance ((phase wall x concurrency - sum of durations) / instances), and the
    median queued -> started latency;
  * peak RSS of the scheduler (with its LocalExecutor workers), the API server and the DAG processor.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time

from common import BUCKET, STATE_DIR, PeakRSS, log, postgres

COMPLIANCE_DB = "iam_bench_dagscale"
PHASES = {
    "discovery": lambda t: t in ("plan_run", "prepare_database", "discover_accounts"),
    "extraction": lambda t: t == "extract_account",
    "load": lambda t: t == "load_staging",
    "checks": lambda t: t.startswith("check_"),
    "summary": lambda t: t in ("summarize", "publish_report", "expire_history"),
}


def _task_instances(env: dict, run_id: str) -> list[dict]:
    from iam_audit.devenv.runner import DAG_ID, metadata_url
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(metadata_url(env), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT task_id, map_index, state, queued_dttm, start_date, end_date, duration FROM task_instance "
                "WHERE dag_id = :d AND run_id = :r"), {"d": DAG_ID, "r": run_id}).mappings().all()
            return [dict(r) for r in rows]
    finally:
        engine.dispose()


def phase_report(tis: list[dict], concurrency: int) -> dict:
    phases: dict[str, dict] = {}
    for name, match in PHASES.items():
        mine = [t for t in tis if match(t["task_id"]) and t["start_date"] and t["end_date"]]
        if not mine:
            continue
        start, end = min(t["start_date"] for t in mine), max(t["end_date"] for t in mine)
        phases[name] = {"instances": len(mine), "seconds": round((end - start).total_seconds(), 1),
                        "start": start, "end": end}
    if "discovery" in phases and "extraction" in phases:
        phases["mapping"] = {"seconds": round(
            (phases["extraction"]["start"] - phases["discovery"]["end"]).total_seconds(), 1)}
    extract = [t for t in tis if t["task_id"] == "extract_account" and t["start_date"] and t["end_date"]]
    overhead = {}
    if extract:
        wall = phases["extraction"]["seconds"]
        busy = sum(t["duration"] or 0 for t in extract)
        latency = [(t["start_date"] - t["queued_dttm"]).total_seconds() for t in extract if t["queued_dttm"]]
        overhead = {
            "concurrency": concurrency,
            "slot_seconds_outside_tasks_per_instance": round((wall * concurrency - busy) / len(extract), 2),
            "median_task_seconds": round(statistics.median(t["duration"] or 0 for t in extract), 2),
            "median_queued_to_start_seconds": round(statistics.median(latency), 2) if latency else None,
        }
    for p in phases.values():
        p.pop("start", None)
        p.pop("end", None)
    return {"phases": phases, "scheduler_overhead": overhead,
            "states": {s: sum(1 for t in tis if t["state"] == s) for s in {t["state"] for t in tis}}}


def run_dag_scale(accounts: int, users: int = 50, parallelism: int = 4, timeout: float = 3600) -> dict:
    import psycopg
    from common import fresh_database
    from iam_audit.devenv import services as services_mod
    from iam_audit.devenv.runner import DAG_ID, migrate
    from iam_audit.devenv.stack import Stack
    from stage_standin import StandInOrg

    result: dict = {"accounts": accounts, "users_per_account": users, "parallelism": parallelism,
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    pg = postgres()
    fresh_database(COMPLIANCE_DB).close()
    home = STATE_DIR / "airflow-dagscale"
    shutil.rmtree(home, ignore_errors=True)
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "airflow_airflow_dagscale" WITH (FORCE)')
    org = StandInOrg(accounts, users)
    services = None
    try:
        stack = Stack(postgres=pg, emulator_url=org.url, state_dir=STATE_DIR, bucket=BUCKET, database=COMPLIANCE_DB)
        env = {**stack.airflow_env(home), "AIRFLOW__CORE__PARALLELISM": str(parallelism)}
        t0 = time.perf_counter()
        migrate(env)
        result["migrate_seconds"] = round(time.perf_counter() - t0, 1)
        services = services_mod.start(env, services_mod.BACKFILL_COMPONENTS, schedule=False)
        services.wait_ready()
        result["executor"] = services.env.get("AIRFLOW__CORE__EXECUTOR")
        pids = {name: proc.pid for name, proc in services.procs.items()}
        services.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
        org.reset_calls()
        with PeakRSS(pids=list(pids.values()), children=True, interval=1.0) as mem:
            t1 = time.perf_counter()
            run = services.api("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": None}, attempts=1)
            run_id, state, last = run["dag_run_id"], None, 0.0
            log(f"dagscale: {accounts} accounts, run {run_id}")
            while time.perf_counter() - t1 < timeout:
                services.check_alive()
                state = services.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
                if state in ("success", "failed"):
                    break
                if time.perf_counter() - last > 60:
                    last = time.perf_counter()
                    log(f"dagscale: {state} after {last - t1:.0f} s, load {os.getloadavg()[0]:.1f}")
                time.sleep(5)
            result["wall_seconds"] = round(time.perf_counter() - t1, 1)
        result["state"] = state
        services.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": True})
        result.update(phase_report(_task_instances(services.env, run_id), parallelism))
        result["peak_rss_mib"] = {name: mem.mib(str(pid)) for name, pid in pids.items()}
        result["peak_rss_mib"]["note"] = "scheduler includes its LocalExecutor worker processes"
        calls = org.calls()
        result["standin_requests"] = sum(c["count"] for c in calls)
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        log(f"dagscale: {state} in {result['wall_seconds']} s; phases "
            + ", ".join(f"{k} {v['seconds']} s" for k, v in result["phases"].items()))
    finally:
        if services is not None:
            services.stop()
        org.stop()
    return result
