"""End to end: the DAG on a real parallel executor against Prowler, on the same emulated organisation.

Airflow: started by iam_audit_dev.devenv.services (the project's one way to start it): metadata in a
PostgreSQL database of the benchmark's server, LocalExecutor with `parallelism` workers (or
CeleryExecutor: Redis and `--celery-workers` workers sharing `parallelism` slots), `airflow api-server`
for the Execution API (shared JWT secret), `airflow scheduler` + `airflow dag-processor`; each run is
triggered with `airflow dags trigger` and timed until the metadata database says it ended (each task
in its own process, as in production). (`airflow dags test --use-executor` hung here with a PostgreSQL
metadata database: every task succeeded but the command never returned.) A no-op DAG of as many
mapped tasks measures Airflow's own per-task start-up overhead on the same setup.

Prowler: bench/.prowler-venv (never a project dependency), one process per account,
`parallelism` at a time, `--compliance cis_3.0_aws -f us-east-1`, against the same emulator.
Both sides' AWS calls are the emulator's counts (HTTP requests, retries included).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import BENCH_DIR, STATE_DIR, EmulatedOrg, PeakRSS, log, postgres

PROJECT = BENCH_DIR.parent
VENV_BIN = Path(os.environ.get("BENCH_VENV_BIN", PROJECT / ".venv" / "bin"))
PROWLER = BENCH_DIR / ".prowler-venv" / "bin" / "prowler"
AIRFLOW_DB = "iam_bench_airflow"
COMPLIANCE_DB = "iam_bench_compliance"

NOOP_DAG = '''
from datetime import datetime
from airflow.sdk import dag, task


@dag(dag_id="bench_noop", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def bench_noop():
    @task
    def items() -> list[int]:
        return list(range({n}))

    @task
    def noop(i: int) -> int:
        return i

    noop.expand(i=items())


bench_noop()
'''


def _free_port() -> int:
    from iam_audit_dev.emulator.process import free_port

    return free_port()


def _fresh_db(name: str) -> None:
    import psycopg

    with psycopg.connect(postgres().conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


class AirflowStack:
    """Airflow for the benchmark, started the project's one way (iam_audit_dev.devenv.services): the
    scheduler, the DAG processor and the API server, plus Redis and Celery workers with CeleryExecutor."""

    def __init__(self, org: EmulatedOrg, parallelism: int, noop_tasks: int, executor: str = "LocalExecutor",
                 celery_workers: int = 2):
        from iam_audit_dev.devenv.runner import migrate  # noqa: F401 - fail early without make install

        self.home = STATE_DIR / "airflow-e2e"
        shutil.rmtree(self.home, ignore_errors=True)
        dags = self.home / "dags"
        dags.mkdir(parents=True)
        (dags / "aws_iam_cis.py").symlink_to(PROJECT / "dags" / "aws_iam_cis.py")
        (dags / "bench_noop.py").write_text(NOOP_DAG.replace("{n}", str(noop_tasks)))
        _fresh_db(AIRFLOW_DB)
        _fresh_db(COMPLIANCE_DB)
        pg = postgres()
        self.executor, self.celery_workers = executor, celery_workers
        self.services = None
        self.env = {
            **org.airflow_env(),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__MAX_MAP_LENGTH": "10000",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            # CeleryExecutor: parallelism slots shared by the workers
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(max(1, parallelism // max(celery_workers, 1))),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
                f"postgresql+psycopg2://postgres@/{AIRFLOW_DB}?host={pg.socket_dir}",
            # Celery workers log "ready." (what services.wait_workers waits for) at INFO: not below it
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING" if executor == "LocalExecutor" else "INFO",
            "AIRFLOW_CONN_POSTGRES_DEFAULT": pg.airflow_conn_json(COMPLIANCE_DB),
            "IAM_AUDIT_TASK_RETRIES": "0",
            "IAM_AUDIT_RETRY_DELAY_SECONDS": "1",
            # The DAG's AWS tasks run in this pool (src/iam_audit/dag.py); as many slots as the DAG can use.
            "IAM_AUDIT_AWS_POOL_SLOTS": "128",
        }

    def airflow(self, *args, log_name: str | None = None, check=True) -> subprocess.CompletedProcess:
        out = open(self.home / (log_name or "cli.log"), "ab")  # noqa: SIM115
        try:
            return subprocess.run([str(VENV_BIN / "airflow"), *args], env={**os.environ, **self.services.env},
                                  stdout=out, stderr=subprocess.STDOUT, check=check)
        finally:
            out.close()

    def start(self) -> dict:
        """db migrate (and the pool), then every component at once; the API server's start is timed
        until it answers (the scheduler and DAG processor start alongside it)."""
        from iam_audit_dev.devenv import services as services_mod
        from iam_audit_dev.devenv.runner import migrate

        t0 = time.perf_counter()
        migrate(self.env)
        migrate_seconds = time.perf_counter() - t0
        self.services = services_mod.start(self.env, services_mod.BACKFILL_COMPONENTS, schedule=False,
                                           executor=self.executor, celery_workers=self.celery_workers)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            self.services.check_alive()
            try:
                with urllib.request.urlopen(f"{self.services.url}/api/v2/version", timeout=2):  # noqa: S310
                    break
            except OSError:
                time.sleep(1)
        else:
            raise RuntimeError(f"airflow api-server did not start; see {self.home / 'services'}")
        api_seconds = time.perf_counter() - t0 - migrate_seconds
        if self.executor == "CeleryExecutor":
            self.services.wait_workers()
        return {"db_migrate_seconds": round(migrate_seconds, 1), "api_server_start_seconds": round(api_seconds, 1),
                "executor": self.executor,
                **({"celery_workers": self.celery_workers} if self.executor == "CeleryExecutor" else {})}

    def start_scheduler(self) -> None:
        """Started with the API server by start() (kept for the stage's order of steps)."""

    def wait_parsed(self, dag_ids, timeout: float = 300) -> float:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            self.services.check_alive()
            try:
                with postgres().connect(AIRFLOW_DB) as conn:
                    found = {r[0] for r in conn.execute("SELECT dag_id FROM serialized_dag").fetchall()}
                if set(dag_ids) <= found:
                    return round(time.perf_counter() - t0, 1)
            except Exception:  # noqa: BLE001 - tables may not exist yet
                pass
            time.sleep(1)
        raise RuntimeError(f"DAGs {dag_ids} not parsed after {timeout} s; see {self.home}/services/dag-processor.log")

    def run_dag(self, dag_id: str, timeout: float = 3600) -> dict:
        """Trigger a run (the scheduler runs it on the LocalExecutor) and wait until it ends."""
        t0 = time.perf_counter()
        with PeakRSS(children=True) as mem:
            self.airflow("dags", "unpause", dag_id, log_name="cli.log", check=False)
            # With no logical date (Airflow 3's default for a manual trigger) plan_run fails with
            # KeyError 'ds' (tasks.plan_run); give one, as the scheduler does.
            now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
            self.airflow("dags", "trigger", dag_id, "--logical-date", now, log_name="cli.log")
            state = None
            while time.perf_counter() - t0 < timeout:
                with postgres().connect(AIRFLOW_DB) as conn:
                    row = conn.execute("SELECT state FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1",
                                       (dag_id,)).fetchone()
                state = row[0] if row else None
                if state in ("success", "failed"):
                    break
                time.sleep(0.5)
        wall = time.perf_counter() - t0
        with postgres().connect(AIRFLOW_DB) as conn:
            run_secs = conn.execute(
                "SELECT extract(epoch FROM end_date - start_date), extract(epoch FROM start_date - queued_at) "
                "FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1", (dag_id,)).fetchone()
        return {"wall_seconds": round(wall, 1),
                "run_seconds": round(float(run_secs[0]), 1) if run_secs and run_secs[0] else None,
                "trigger_to_start_seconds": round(float(run_secs[1]), 1) if run_secs and run_secs[1] else None,
                "peak_rss_mib_bench_and_cli": mem.mib("bench"), **self.task_stats(dag_id)}

    def task_stats(self, dag_id: str) -> dict:
        with postgres().connect(AIRFLOW_DB) as conn:
            state = conn.execute("SELECT state FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1",
                                 (dag_id,)).fetchone()
            rows = conn.execute(
                """SELECT task_id, state, extract(epoch FROM start_date - queued_dttm),
                          extract(epoch FROM end_date - start_date)
                   FROM task_instance WHERE dag_id = %s""", (dag_id,)).fetchall()
        def med(xs):
            xs = sorted(x for x in xs if x is not None)
            return round(float(xs[len(xs) // 2]), 2) if xs else None
        by_task: dict[str, list] = {}
        for task_id, st, q, d in rows:
            key = "check_*" if task_id.startswith("check_") else task_id
            by_task.setdefault(key, []).append((st, q, d))
        return {
            "dag_run_state": state[0] if state else None,
            "task_instances": len(rows),
            "failed": sum(1 for r in rows if r[1] == "failed"),
            "median_queued_to_start_seconds": med([r[2] for r in rows]),
            "median_task_duration_seconds": med([r[3] for r in rows]),
            "by_task": {k: {"count": len(v), "median_duration_seconds": med([x[2] for x in v]),
                            "median_queued_to_start_seconds": med([x[1] for x in v]),
                            "states": sorted({x[0] or "none" for x in v})} for k, v in by_task.items()},
        }

    def stop(self) -> None:
        if self.services:
            self.services.stop(grace=20)


def run_prowler(org: EmulatedOrg, parallelism: int) -> dict:
    if not PROWLER.exists():
        return {"skipped": f"{PROWLER} is not installed (make bench installs it)"}
    out_dir = STATE_DIR / "prowler-out"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    env = {**os.environ, "AWS_ENDPOINT_URL": org.url, "AWS_ACCESS_KEY_ID": "AKIAEMULATORBENCH001",
           "AWS_SECRET_ACCESS_KEY": "emulator-bench-secret", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    for var in ("PYTHONPATH", "AWS_PROFILE", "VIRTUAL_ENV"):
        env.pop(var, None)
    durations: dict[str, float] = {}
    codes: dict[str, int] = {}

    def one(account_id: str):
        t0 = time.perf_counter()
        with open(out_dir / f"{account_id}.log", "wb") as log_file:
            proc = subprocess.run(
                [str(PROWLER), "aws", "--role", f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
                 "--compliance", "cis_3.0_aws", "-f", "us-east-1", "--no-banner", "-M", "csv",
                 "-o", str(out_dir), "-F", f"prowler-{account_id}", "-z"],
                env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=out_dir)
        durations[account_id] = time.perf_counter() - t0
        codes[account_id] = proc.returncode

    org.reset_calls()
    t0 = time.perf_counter()
    with PeakRSS(children=True) as mem, ThreadPoolExecutor(max_workers=parallelism) as pool:
        list(pool.map(one, org.account_ids))
    wall = time.perf_counter() - t0
    calls = org.calls()
    findings = 0
    for csv_file in out_dir.glob("prowler-*.csv"):
        findings += max(sum(1 for _ in csv_file.open(errors="replace")) - 1, 0)
    secs = sorted(durations.values())
    return {
        "wall_seconds": round(wall, 1),
        "median_seconds_per_account": round(secs[len(secs) // 2], 1),
        "failed_processes": sum(1 for c in codes.values() if c != 0),
        "findings_rows": findings,
        "calls": _call_summary(calls, len(org.account_ids)),
        "peak_rss_mib_incl_children": mem.mib("bench"),
    }


def _call_summary(calls: list[dict], accounts: int) -> dict:
    total = sum(c["count"] for c in calls)
    s3 = sum(c["count"] for c in calls if c["service"] == "s3")
    by_service: dict[str, int] = {}
    by_op: dict[str, int] = {}
    for c in calls:
        by_service[c["service"]] = by_service.get(c["service"], 0) + c["count"]
        op = f"{c['service']}:{c['action']}"
        by_op[op] = by_op.get(op, 0) + c["count"]
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:12]
    return {"total": total, "excluding_s3": total - s3, "per_account": round(total / accounts, 1),
            "per_account_excluding_s3": round((total - s3) / accounts, 1),
            "by_service": dict(sorted(by_service.items(), key=lambda kv: -kv[1])),
            "top_operations": dict(top)}


def run_e2e(accounts: int, users: int, parallelism: int, prowler: bool = True, executor: str = "LocalExecutor",
            celery_workers: int = 2) -> dict:
    log(f"e2e: seeding {accounts} accounts x {users} users")
    org = EmulatedOrg(accounts, users)
    result: dict = {"accounts": accounts, "users_per_account": users, "parallelism": parallelism,
                    "seed_seconds": org.seed_seconds}
    stack = None
    try:
        stack = AirflowStack(org, parallelism, noop_tasks=accounts, executor=executor, celery_workers=celery_workers)
        result["airflow_setup"] = stack.start()
        stack.start_scheduler()
        result["airflow_setup"]["dag_parse_seconds"] = stack.wait_parsed(["bench_noop", "aws_iam_cis"])
        log("e2e: Airflow up; running the no-op DAG (per-task overhead)")
        noop = stack.run_dag("bench_noop")
        noop["wall_seconds_per_task"] = round(noop["wall_seconds"] / max(noop["task_instances"], 1), 2)
        result["airflow_noop"] = noop
        log(f"e2e: no-op DAG {noop['task_instances']} tasks in {noop['wall_seconds']} s; running aws_iam_cis")
        org.reset_calls()
        dag = stack.run_dag("aws_iam_cis")
        dag["calls"] = _call_summary(org.calls(), accounts)
        result["dag"] = dag
        log(f"e2e: DAG {dag['dag_run_state']} in {dag['wall_seconds']} s, {dag['calls']['total']} calls")
    finally:
        if stack:
            stack.stop()
    try:
        if prowler:
            log(f"e2e: Prowler, {accounts} processes, {parallelism} at a time")
            result["prowler"] = run_prowler(org, parallelism)
            p = result["prowler"]
            if "wall_seconds" in p:
                d = result["dag"]
                result["ratios"] = {
                    "wall_prowler_over_dag": round(p["wall_seconds"] / d["wall_seconds"], 2),
                    "calls_prowler_over_dag": round(p["calls"]["total"] / max(d["calls"]["total"], 1), 2),
                    "calls_prowler_over_dag_excluding_s3": round(
                        p["calls"]["excluding_s3"] / max(d["calls"]["excluding_s3"], 1), 2),
                    "target": 5,
                }
                log(f"e2e: Prowler {p['wall_seconds']} s, {p['calls']['total']} calls; ratios {result['ratios']}")
    finally:
        org.stop()
    return result
