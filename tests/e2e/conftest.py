"""An embedded stack for whole-DAG runs: real PostgreSQL, the emulator over HTTP, real Airflow tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from iam_audit_dev.devenv.runner import DagRunResult, metadata_url, migrate, run_dag, task_states
from iam_audit_dev.devenv.stack import Stack

from tests.conftest import PROJECT_ROOT, TEST_STATE

EXTERNAL_ID = f"e2e-external-id-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def e2e_stack(postgres, seeded_emulator):
    database = f"e2e_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    stack = Stack(postgres=postgres, emulator_url=seeded_emulator.url, state_dir=TEST_STATE,
                  bucket=f"e2e-{uuid.uuid4().hex[:8]}", database=database, emulator=seeded_emulator)
    stack.boto3_client("s3").create_bucket(Bucket=stack.bucket)
    env = stack.airflow_env(airflow_home=TEST_STATE / f"airflow-{database}")
    # A secret that must reach AssumeRole and nothing else (tests/e2e/test_security.py looks for it).
    env["AIRFLOW_VAR_IAM_AUDIT_EXTERNAL_ID"] = stack.external_id = EXTERNAL_ID
    # The writer policy's Deny on unencrypted s3:PutObject, for every write of every run.
    seeded_emulator.deny_unencrypted_puts(stack.bucket)
    migrate(env)
    stack.env = env
    return stack


@pytest.fixture(scope="session")
def today() -> str:
    return datetime.now(UTC).date().isoformat()


class DagServer:
    """tests/e2e/dag_server.py in a process of its own: each run as `airflow dags test` makes it,
    without Airflow's start-up per run. IAM_AUDIT_E2E_CLI=1 runs `airflow dags test` itself instead."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        with open(TEST_STATE / "dag-server.log", "ab") as server_log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.e2e.dag_server"], cwd=PROJECT_ROOT,
                                         env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=server_log, text=True)

    def run(self, logical_date: str, log_file: Path, env_overrides: dict[str, str],
            conf: dict | None = None) -> DagRunResult:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        request = {"env": env_overrides, "logical_date": logical_date, "log_file": str(log_file), "conf": conf}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the DAG server died; see {TEST_STATE / 'dag-server.log'} and {log_file}")
        answer = json.loads(line)
        engine = create_engine(metadata_url(self.env), poolclass=NullPool)
        try:
            _, rows = task_states(engine, answer["run_id"])
        finally:
            engine.dispose()
        failed = sorted({f"{t}[{m}]" if m >= 0 else t for t, m, s in rows if s in ("failed", "upstream_failed")})
        return DagRunResult(1 if answer["error"] else 0, answer["state"], answer["run_id"], failed, log_file)

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def run(e2e_stack):
    """Run the DAG once: run(logical_date, conf=None, **env_overrides) -> DagRunResult (conf: the run's params)."""
    counter = iter(range(1000))
    server = None if os.environ.get("IAM_AUDIT_E2E_CLI") == "1" else DagServer(e2e_stack.env)

    def _run(logical_date: str, conf: dict | None = None, **env_overrides):
        log_file = TEST_STATE / f"dag-run-{e2e_stack.database}-{next(counter)}.log"
        if server:
            return server.run(logical_date, log_file, env_overrides, conf)
        return run_dag({**e2e_stack.env, **env_overrides}, logical_date=logical_date, log_file=log_file,
                       conf=json.dumps(conf) if conf else None, progress=None)

    yield _run
    if server:
        server.stop()


def fetch_results(stack, snapshot_date) -> dict:
    with stack.postgres.connect(stack.database) as conn:
        rows = conn.execute(
            "SELECT framework, check_id, account_id, resource_id, status, reason FROM aws_policy_results "
            "WHERE snapshot_date = %s", (snapshot_date,)).fetchall()
    return {(f, c, a, r): (s, why) for f, c, a, r, s, why in rows}


class FirstRun(tuple):
    """(DagRunResult, verdicts, AWS calls); .requests: the authorisation requests of the run,
    .refused: those the enforced shipped policies refused."""

    requests: list[dict]
    refused: list[dict]
    elapsed: float
    staged_users: int


def policy_values(emulator_url: str, bucket: str, prefix: str = "iam", role_name: str = "IamAuditReadOnly") -> dict:
    """The placeholders of src/iam_audit/policies/ for the run: the organisation and the bucket owner as AWS
    (the emulator) reports them to the pipeline's credentials."""
    import boto3
    from iam_audit_dev.devenv.stack import EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY

    session = boto3.Session(aws_access_key_id=EMULATOR_ACCESS_KEY, aws_secret_access_key=EMULATOR_SECRET_KEY,
                            region_name="us-east-1")
    org_id = session.client("organizations", endpoint_url=emulator_url).describe_organization()["Organization"]["Id"]
    owner = session.client("sts", endpoint_url=emulator_url).get_caller_identity()["Account"]
    return {"AuditRoleName": role_name, "Bucket": bucket, "Prefix": prefix, "OrganizationId": org_id,
            "BucketOwnerAccountId": owner}


def shipped_policies(bucket: str, prefix: str = "iam", role_name: str = "IamAuditReadOnly", emulator_url=None):
    """The emulator's enforcement rules: src/iam_audit/policies/ for the pipeline's key and the audit role."""
    from iam_audit_dev.devenv.stack import EMULATOR_ACCESS_KEY

    from iam_audit.evaluate.policies import load_policy

    values = policy_values(emulator_url, bucket, prefix, role_name)
    pipeline = [load_policy(n, **values) for n in ("pipeline-discovery.json", "s3-raw-writer.json",
                                                   "s3-raw-reader.json")]
    return [{"access_key": EMULATOR_ACCESS_KEY, "policies": pipeline},
            {"role_name": role_name, "policies": [load_policy("audit-role-permissions.json", **values)]}]


@pytest.fixture(scope="session")
def first_run(e2e_stack, run, today):
    """One clean run under the shipped least-privilege policies, enforced by the emulator."""
    emulator = e2e_stack.emulator
    emulator.clear_faults()
    policies = shipped_policies(e2e_stack.bucket, emulator_url=emulator.url)  # its own calls before the reset
    emulator.reset_calls()
    emulator.enforce(policies)
    import time

    try:
        started = time.monotonic()
        result = run(today)
        elapsed = time.monotonic() - started
        refused = emulator.refused()
    finally:
        emulator.clear_enforcement()
    out = FirstRun((result, fetch_results(e2e_stack, today), emulator.calls()))
    out.requests, out.refused, out.elapsed = emulator.requests(), refused, elapsed
    with e2e_stack.postgres.connect(e2e_stack.database) as conn:
        out.staged_users = conn.execute("SELECT count(*) FROM iam_stage.users WHERE snapshot_date = %s",
                                        (today,)).fetchone()[0]
    return out
