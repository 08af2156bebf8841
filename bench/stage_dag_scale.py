"""Stage `dagscale`: the whole aws_iam_cis DAG against the AWS stand-in, at N mapped accounts.

Airflow is started the project's way (iam_audit_dev.devenv.stack.Stack.airflow_env, runner.migrate,
devenv.services.start: scheduler, DAG processor, API server; LocalExecutor, or CeleryExecutor with a
Redis broker and `celery_workers` Celery workers), on the benchmark's PostgreSQL (metadata database
and compliance database of their own). Optionally a no-op DAG of `noop_tasks` mapped tasks runs first
on the same setup (Airflow's own overhead per task instance, measured as in stage e2e: wall time of
the run / task instances). Then one aws_iam_cis run is triggered through the REST API and timed until
it ends. Reported, from the task instances' start and end times in the metadata database:
  * wall time per phase: discovery (plan_run, prepare_database, discover_accounts, batch_accounts),
    mapping (end of discovery to the first extract_account start), extraction (all extract_account
    instances), load (load_staging), checks (check_*), summary (summarize, publish_report,
    expire_history);
  * scheduler overhead per mapped task instance: slot-seconds of the extraction phase not spent
    inside a task instance ((phase wall x concurrency - sum of durations) / instances), and the
    median queued -> started latency;
  * peak RSS of every component (scheduler, DAG processor, API server, each Celery worker with its
    pool and task processes, Redis) and of the stand-in;
  * time to first byte of the API calls the UI's grid and the Compliance page make, once during the
    extraction and once after the run;
  * the load average, sampled every 30 s.
"""

from __future__ import annotations

import http.client
import os
import shutil
import statistics
import time
from urllib.parse import quote

from common import BUCKET, STATE_DIR, PeakRSS, log, postgres

COMPLIANCE_DB = "iam_bench_dagscale"
PHASES = {
    "discovery": lambda t: t in ("plan_run", "prepare_database", "discover_accounts", "batch_accounts"),
    "extraction": lambda t: t == "extract_account",
    "load": lambda t: t == "load_staging",
    "checks": lambda t: t.startswith("check_"),
    "summary": lambda t: t in ("summarize", "publish_report", "expire_history"),
}
NOOP_DAG_ID = "bench_noop"


def _engine(env: dict):
    from iam_audit_dev.devenv.runner import metadata_url
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(metadata_url(env), poolclass=NullPool)


def _task_instances(env: dict, run_id: str, dag_id: str | None = None) -> list[dict]:
    from iam_audit_dev.devenv.runner import DAG_ID
    from sqlalchemy import text

    engine = _engine(env)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT task_id, map_index, state, queued_dttm, start_date, end_date, duration, hostname "
                "FROM task_instance WHERE dag_id = :d AND run_id = :r"),
                {"d": dag_id or DAG_ID, "r": run_id}).mappings().all()
            return [dict(r) for r in rows]
    finally:
        engine.dispose()


def _dag_run_times(env: dict, dag_id: str, run_id: str) -> dict:
    from sqlalchemy import text

    engine = _engine(env)
    try:
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT extract(epoch FROM end_date - start_date), extract(epoch FROM start_date - queued_at) "
                "FROM dag_run WHERE dag_id = :d AND run_id = :r"), {"d": dag_id, "r": run_id}).fetchone()
    finally:
        engine.dispose()
    return {"run_seconds": round(float(row[0]), 1) if row and row[0] is not None else None,
            "queued_to_start_seconds": round(float(row[1]), 1) if row and row[1] is not None else None}


def phase_report(tis: list[dict], concurrency: int) -> dict:
    phases: dict[str, dict] = {}
    for name, match in PHASES.items():
        mine = [t for t in tis if match(t["task_id"]) and t["start_date"] and t["end_date"]]
        if not mine:
            continue
        start, end = min(t["start_date"] for t in mine), max(t["end_date"] for t in mine)
        phases[name] = {"instances": len(mine), "seconds": round((end - start).total_seconds(), 1),
                        "start": start, "end": end}
        if len(mine) <= 4:
            phases[name]["task_seconds"] = {t["task_id"]: round(t["duration"] or 0, 1) for t in mine}
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
            "hosts": sorted({t["hostname"] for t in extract if t["hostname"]}),
        }
    for p in phases.values():
        for key in ("start", "end"):
            if key in p:
                p[key] = p[key].isoformat(timespec="seconds")
    return {"phases": phases, "scheduler_overhead": overhead,
            "states": {str(s): sum(1 for t in tis if t["state"] == s) for s in {t["state"] for t in tis}}}


def ttfb(services, path: str, repeats: int = 3) -> dict:
    """Time to first byte (the response's status line and headers) and to the last byte, of GET path,
    with the UI's bearer token; the median of `repeats` requests."""
    firsts, totals, size, status = [], [], 0, None
    for _ in range(repeats):
        conn = http.client.HTTPConnection("127.0.0.1", services.port, timeout=300)
        try:
            t0 = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Bearer {services.token()}"})
            response = conn.getresponse()
            first = time.perf_counter() - t0
            body = response.read()
            totals.append(time.perf_counter() - t0)
            firsts.append(first)
            size, status = len(body), response.status
        finally:
            conn.close()
    return {"status": status, "ttfb_seconds": round(statistics.median(firsts), 3),
            "total_seconds": round(statistics.median(totals), 3), "bytes": size}


def ui_paths(dag_id: str, run_id: str) -> dict[str, str]:
    """The API calls of the grid page (Airflow 3.3's UI bundle: getDagStructure, getGridRuns,
    getGridTiSummariesStream, the mapped-instances list of a run) and of the Compliance page."""
    run = quote(run_id, safe="")
    return {
        "grid_structure": f"/ui/grid/structure/{dag_id}?limit=10&order_by=-run_after",
        "grid_runs": f"/ui/grid/runs/{dag_id}?limit=10&order_by=-run_after",
        "grid_ti_summaries": f"/ui/grid/ti_summaries/{dag_id}?run_ids={run}",
        "mapped_instances": f"/api/v2/dags/{dag_id}/dagRuns/{run}/taskInstances/extract_account/listMapped"
                            "?limit=50&offset=0&order_by=map_index",
        "dag_details": f"/api/v2/dags/{dag_id}/details",
        "compliance_page": "/compliance/",
        "compliance_summary": "/compliance/api/summary",
    }


def ui_timings(services, dag_id: str, run_id: str) -> dict:
    out = {}
    for name, path in ui_paths(dag_id, run_id).items():
        try:
            out[name] = ttfb(services, path)
        except Exception as exc:  # noqa: BLE001 - a failing call is a result too
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _wait_run(services, dag_id: str, run_id: str, timeout: float, poll: float, tick=None) -> str | None:
    t1, state = time.perf_counter(), None
    while time.perf_counter() - t1 < timeout:
        services.check_alive()
        state = services.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            return state
        if tick:
            tick(time.perf_counter() - t1)
        time.sleep(poll)
    return state


def _trigger(services, dag_id: str) -> str:
    services.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    return services.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None}, attempts=1)["dag_run_id"]


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each component's process tree, including the
    children it has already reaped (the task processes of a Celery worker's pool, for instance)."""
    import psutil

    out = {}
    for name, pid in pids.items():
        total = 0.0
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            try:
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        out[name] = total
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    delta = {k: round(after[k] - before.get(k, 0.0), 1) for k in after}
    delta["airflow"] = round(sum(v for k, v in delta.items() if k != "standin"), 1)
    return delta


def run_noop(services, tasks: int, timeout: float = 1800) -> dict:
    """Airflow's own overhead per task instance: a DAG of one task returning range(tasks) and `tasks`
    mapped no-op instances (as stage e2e's bench_noop); wall time trigger -> end / task instances."""
    t0 = time.perf_counter()
    run_id = _trigger(services, NOOP_DAG_ID)
    state = _wait_run(services, NOOP_DAG_ID, run_id, timeout, poll=0.5)
    wall = time.perf_counter() - t0
    tis = _task_instances(services.env, run_id, NOOP_DAG_ID)
    durations = [t["duration"] or 0 for t in tis]
    latency = [(t["start_date"] - t["queued_dttm"]).total_seconds() for t in tis
               if t["queued_dttm"] and t["start_date"]]
    return {"state": state, "task_instances": len(tis), "wall_seconds": round(wall, 1),
            "wall_seconds_per_task": round(wall / max(len(tis), 1), 3),
            **_dag_run_times(services.env, NOOP_DAG_ID, run_id),
            "median_task_seconds": round(statistics.median(durations), 3) if durations else None,
            "median_queued_to_start_seconds": round(statistics.median(latency), 2) if latency else None,
            "hosts": sorted({t["hostname"] for t in tis if t["hostname"]})}


def run_dag_scale(accounts: int, users: int = 50, parallelism: int = 4, executor: str = "LocalExecutor",
                  celery_workers: int = 2, worker_concurrency: int | None = None, accounts_per_task: int = 1,
                  noop_tasks: int = 0, run_dag: bool = True, airflow_settings: dict | None = None,
                  pool_slots: int = 16, timeout: float = 3600) -> dict:
    import psycopg
    from common import fresh_database
    from iam_audit_dev.devenv import services as services_mod
    from iam_audit_dev.devenv.runner import DAG_ID, migrate
    from iam_audit_dev.devenv.stack import PROJECT_ROOT, Stack
    from stage_e2e import NOOP_DAG
    from stage_standin import StandInOrg

    celery = executor == "CeleryExecutor"
    worker_concurrency = worker_concurrency or max(1, parallelism // max(celery_workers, 1))
    concurrency = min(parallelism, celery_workers * worker_concurrency) if celery else parallelism
    result: dict = {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "accounts": accounts, "users_per_account": users, "executor": executor, "parallelism": parallelism,
        **({"celery_workers": celery_workers, "worker_concurrency": worker_concurrency} if celery else {}),
        "accounts_per_task": accounts_per_task, "pool_slots": pool_slots,
        "airflow_settings": airflow_settings or {},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    pg = postgres()
    fresh_database(COMPLIANCE_DB).close()
    home = STATE_DIR / "airflow-dagscale"
    shutil.rmtree(home, ignore_errors=True)
    dags = home / "dags"
    dags.mkdir(parents=True)
    (dags / "aws_iam_cis.py").symlink_to(PROJECT_ROOT / "dags" / "aws_iam_cis.py")
    if noop_tasks:
        (dags / "bench_noop.py").write_text(NOOP_DAG.replace("{n}", str(noop_tasks)))
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "airflow_airflow_dagscale" WITH (FORCE)')
    org = StandInOrg(accounts, users)
    services = None
    loads: list[tuple[float, float]] = []
    try:
        stack = Stack(postgres=pg, emulator_url=org.url, state_dir=STATE_DIR, bucket=BUCKET, database=COMPLIANCE_DB)
        env = {**stack.airflow_env(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
               "AIRFLOW__CORE__PARALLELISM": str(parallelism),
               "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
               "AIRFLOW_VAR_IAM_AUDIT_ACCOUNTS_PER_TASK": str(accounts_per_task),
               "IAM_AUDIT_AWS_POOL_SLOTS": str(pool_slots),
               **(airflow_settings or {})}
        t0 = time.perf_counter()
        migrate(env)
        result["migrate_seconds"] = round(time.perf_counter() - t0, 1)
        services = services_mod.start(env, services_mod.BACKFILL_COMPONENTS, schedule=False, executor=executor,
                                      celery_workers=celery_workers)
        services.wait_ready()
        if noop_tasks:
            services.wait_ready(dag_id=NOOP_DAG_ID)
        if celery:
            services.wait_workers()
        result["airflow_ready_seconds"] = round(time.perf_counter() - t0 - result["migrate_seconds"], 1)
        pids = {name: proc.pid for name, proc in services.procs.items()}
        pids["standin"] = org.pid
        with PeakRSS(pids=list(pids.values()), children=True, interval=1.0) as mem:
            if noop_tasks:
                log(f"dagscale: no-op DAG, {noop_tasks} mapped tasks")
                before = cpu_seconds(pids)
                result["noop"] = run_noop(services, noop_tasks)
                cpu = cpu_delta(before, cpu_seconds(pids))
                result["noop"]["cpu_seconds"] = cpu
                tis = max(result["noop"]["task_instances"], 1)
                result["noop"]["cpu_seconds_per_task"] = round(cpu["airflow"] / tis, 2)
                log(f"dagscale: no-op {result['noop']}")
            if run_dag:
                org.reset_calls()
                before = cpu_seconds(pids)
                t1 = time.perf_counter()
                run_id = _trigger(services, DAG_ID)
                log(f"dagscale: {accounts} accounts, run {run_id}")
                marks = {"log": 0.0, "load": -1e9}

                def tick(elapsed: float) -> None:
                    if elapsed - marks["load"] >= 30:
                        marks["load"] = elapsed
                        loads.append((round(elapsed), round(os.getloadavg()[0], 2)))
                    if "ui_during_extraction" not in result and elapsed > 60:
                        tis = _task_instances(services.env, run_id)
                        done = sum(1 for t in tis if t["task_id"] == "extract_account" and t["state"] == "success")
                        mapped = sum(1 for t in tis if t["task_id"] == "extract_account")
                        if mapped > 1 and done * 2 >= mapped:
                            result["ui_during_extraction"] = {"extract_done": f"{done}/{mapped}",
                                                              **ui_timings(services, DAG_ID, run_id)}
                    if elapsed - marks["log"] > 60:
                        marks["log"] = elapsed
                        log(f"dagscale: running after {elapsed:.0f} s, load {os.getloadavg()[0]:.1f}")

                state = _wait_run(services, DAG_ID, run_id, timeout, poll=5, tick=tick)
                result["wall_seconds"] = round(time.perf_counter() - t1, 1)
                result["cpu_seconds"] = cpu_delta(before, cpu_seconds(pids))
                result["state"] = state
                result["ended_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                result["ui_after_run"] = ui_timings(services, DAG_ID, run_id)
        for dag_id in ([NOOP_DAG_ID] if noop_tasks else []) + ([DAG_ID] if run_dag else []):
            services.api("PATCH", f"/dags/{dag_id}", {"is_paused": True})
        if run_dag:
            result.update(phase_report(_task_instances(services.env, run_id), concurrency))
            result["dag_run"] = _dag_run_times(services.env, DAG_ID, run_id)
            calls = org.calls()
            result["standin_requests"] = sum(c["count"] for c in calls)
        result["peak_rss_mib"] = {name: mem.mib(str(pid)) for name, pid in pids.items()}
        result["peak_rss_mib"]["note"] = ("each figure includes the component's child processes (LocalExecutor "
                                          "workers under the scheduler; pool and task processes under a Celery "
                                          "worker)")
        result["load_average_samples"] = loads
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if run_dag:
            log(f"dagscale: {result['state']} in {result['wall_seconds']} s; phases "
                + ", ".join(f"{k} {v['seconds']} s" for k, v in result["phases"].items()))
    finally:
        if services is not None:
            services.stop()
        org.stop()
    return result
