"""The DAG on Airflow's CeleryExecutor (as docker-compose.yaml declares it): a Redis broker, two Celery
worker processes, the scheduler, the DAG processor and the API server (Execution API, shared JWT
secret) on a PostgreSQL metadata database, all started by devenv/services.py. Its verdicts must equal
those of an `airflow dags test` run (what `make run` does) of the same organisation; and when one
worker is SIGKILLed while extract tasks run, Airflow must still finish the run with the same verdicts.

`make test-distributed`; not part of `make test` (minutes on two cores)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from iam_audit_dev.devenv import services as services_mod
from iam_audit_dev.devenv.runner import DAG_ID, metadata_url, migrate, run_dag
from iam_audit_dev.devenv.stack import Stack

from tests.conftest import TEST_STATE

pytestmark = [pytest.mark.e2e, pytest.mark.distributed]

ACCOUNTS = 5  # plus the management account
RUN_TIMEOUT = 1800


@pytest.fixture(scope="module")
def org():
    from iam_audit_dev.emulator.process import start_emulator

    emulator = start_emulator(log_path=str(TEST_STATE / "emulator-distributed.log"))
    emulator.manifest = emulator.seed(accounts=ACCOUNTS, users=4, seed=7)
    yield emulator
    emulator.stop()


def _stack(postgres, emulator, tag: str) -> Stack:
    database = f"dist_{tag}_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    stack = Stack(postgres=postgres, emulator_url=emulator.url, state_dir=TEST_STATE,
                  bucket=f"dist-{tag}-{uuid.uuid4().hex[:8]}", database=database, emulator=emulator)
    stack.boto3_client("s3").create_bucket(Bucket=stack.bucket)
    return stack


def verdicts(stack: Stack, snapshot_date: str) -> Counter:
    """Every verdict row of the date, counted: a duplicate row shows as a count of 2."""
    with stack.postgres.connect(stack.database) as conn:
        rows = conn.execute(
            "SELECT framework, check_id, account_id, resource_id, status, reason FROM aws_policy_results "
            "WHERE snapshot_date = %s", (snapshot_date,)).fetchall()
    return Counter(tuple(r) for r in rows)


@pytest.fixture(scope="module")
def today() -> str:
    return datetime.now(UTC).date().isoformat()


@pytest.fixture(scope="module")
def reference(postgres, org, today):
    """The verdicts of `airflow dags test` (make run's way) on a stack of its own."""
    stack = _stack(postgres, org, "ref")
    env = stack.airflow_env(airflow_home=TEST_STATE / f"airflow-{stack.database}")
    migrate(env)
    result = run_dag(env, logical_date=today, log_file=TEST_STATE / f"dag-run-{stack.database}.log", progress=None)
    assert result.state == "success", f"reference run {result.state}: {result.failed_tasks}; log {result.log_file}"
    found = verdicts(stack, today)
    assert found, "the reference run wrote no verdict"
    return found


@pytest.fixture(scope="module")
def celery(postgres, org):
    stack = _stack(postgres, org, "celery")
    env = stack.airflow_env(airflow_home=TEST_STATE / f"airflow-{stack.database}", retries=2)
    env.update({
        # A lost worker's running task stops heartbeating: the scheduler fails it after this long and
        # Airflow retries it (retries=2) on a worker that is alive. Default 300 s.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        # A task the lost worker had received but not started stays queued: requeued after this long.
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
        "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "300",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__CORE__PARALLELISM": "4",
    })
    migrate(env)
    services = services_mod.start(env, services_mod.BACKFILL_COMPONENTS, schedule=False,
                                  executor="CeleryExecutor", celery_workers=2)
    pids = [p.pid for p in services.procs.values()]
    try:
        services.wait_ready()
        services.wait_workers()
        services.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
        yield stack, services
    finally:
        left = services_mod.terminate_group(services.pgid, pids)
        services.stop()
    assert not left, f"processes left running: {left}"


def _task_instances(services, run_id: str) -> list[dict]:
    from sqlalchemy import create_engine, text

    engine = create_engine(metadata_url(services.env))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT task_id, map_index, state, hostname, try_number FROM task_instance "
                "WHERE dag_id = :d AND run_id = :r"), {"d": DAG_ID, "r": run_id}).mappings().all()
            history = conn.execute(text(
                "SELECT task_id, map_index, state, hostname, try_number FROM task_instance_history "
                "WHERE dag_id = :d AND run_id = :r"), {"d": DAG_ID, "r": run_id}).mappings().all()
    finally:
        engine.dispose()
    return [dict(r, current=True) for r in rows] + [dict(r, current=False) for r in history]


def _trigger(services, logical_date: str) -> str:
    run = services.api("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": logical_date, "conf": {"mode": "live"}})
    return run["dag_run_id"]


def _wait(services, run_id: str, on_poll=None) -> str:
    from urllib.parse import quote

    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        services.check_alive()
        if on_poll:
            on_poll()
        state = services.api("GET", f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(1)
    raise AssertionError(f"run {run_id} not finished after {RUN_TIMEOUT} s; logs: {services.home}")


def test_celery_run_uses_both_workers_and_matches_make_run(celery, reference, today):
    stack, services = celery
    run_id = _trigger(services, f"{today}T00:00:00Z")
    assert _wait(services, run_id) == "success", f"logs: {services.home}"
    tis = [t for t in _task_instances(services, run_id) if t["current"]]
    extract = [t for t in tis if t["task_id"] == "extract_account" and t["map_index"] >= 0]
    assert len(extract) == ACCOUNTS + 1 and {t["state"] for t in extract} == {"success"}
    used = {t["hostname"] for t in tis if t["state"] == "success"}
    workers = set(services.workers.values())
    assert used <= workers, f"task instances ran outside the Celery workers: {used - workers}"
    assert used == workers, f"tasks ran on {sorted(used)} only, not on both workers {sorted(workers)}"
    assert verdicts(stack, today) == reference


def test_a_worker_killed_mid_run_loses_nothing(celery, reference, today):
    stack, services = celery
    # a second run of the same date (a logical date in the future would wait for it: RunnableExecDateDep)
    run_id = _trigger(services, f"{today}T00:00:01Z")
    victim: dict = {}

    def kill_when_extracting():
        if victim:
            return
        running = [t for t in _task_instances(services, run_id) if t["current"]
                   and t["task_id"] == "extract_account" and t["state"] == "running" and t["hostname"]]
        by_host = {host: name for name, host in services.workers.items()}
        for t in running:
            if t["hostname"] in by_host:
                victim.update(name=by_host[t["hostname"]], host=t["hostname"],
                              tasks={(x["task_id"], x["map_index"]) for x in running
                                     if x["hostname"] == t["hostname"]})
                services.kill(victim["name"])
                return

    assert _wait(services, run_id, kill_when_extracting) == "success", f"logs: {services.home}"
    assert victim, "no extract task was seen running on a worker: nothing was killed"
    survivor = next(h for n, h in services.workers.items() if n != victim["name"])
    tis = _task_instances(services, run_id)
    current = {(t["task_id"], t["map_index"]): t for t in tis if t["current"]}
    # A task that finished on the victim just before the kill keeps its success; the others were retried.
    retried = [k for k in victim["tasks"] if current[k]["hostname"] == survivor and current[k]["try_number"] > 1]
    assert retried, f"no task of the killed worker was retried on {survivor}: {[current[k] for k in victim['tasks']]}"
    assert all(current[k]["state"] == "success" for k in victim["tasks"])
    extract = [t for k, t in current.items() if k[0] == "extract_account" and k[1] >= 0]
    assert len(extract) == ACCOUNTS + 1 and {t["state"] for t in extract} == {"success"}
    assert verdicts(stack, today) == reference
