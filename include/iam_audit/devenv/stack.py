"""The embedded stack for `make demo`, `make airflow`, tests and benchmarks.

PostgreSQL (pgserver) and the AWS emulator (moto server, patched) run as
background processes whose state lives under .devenv/; this module starts them,
seeds the demo organisation and builds the Airflow environment that points the
`aws_default` and `postgres_default` connections at them.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import boto3

from iam_audit.devenv.postgres import EmbeddedPostgres, start_postgres
from iam_audit.paths import PROJECT_ROOT

STATE_DIR = Path(os.environ.get("IAM_AUDIT_STATE_DIR", PROJECT_ROOT / ".devenv"))
DEMO_BUCKET = "iam-audit-raw"
COMPLIANCE_DB = "compliance"
# Fake credentials for the emulator; distinctive so leak tests can search for them.
EMULATOR_ACCESS_KEY = "AKIAEMULATORDEMO0001"
EMULATOR_SECRET_KEY = "emulator-secret-do-not-leak-7f3a9c"


@dataclass
class Stack:
    postgres: EmbeddedPostgres
    emulator_url: str
    state_dir: Path
    bucket: str = DEMO_BUCKET
    database: str = COMPLIANCE_DB
    emulator: object | None = None

    def aws_conn_json(self) -> str:
        return json.dumps({
            "conn_type": "aws",
            "login": EMULATOR_ACCESS_KEY,
            "password": EMULATOR_SECRET_KEY,
            "extra": {"endpoint_url": self.emulator_url, "region_name": "us-east-1"},
        })

    def boto3_client(self, service: str):
        return boto3.client(service, endpoint_url=self.emulator_url, region_name="us-east-1",
                            aws_access_key_id=EMULATOR_ACCESS_KEY, aws_secret_access_key=EMULATOR_SECRET_KEY)

    def airflow_env(self, airflow_home: Path | None = None, retries: int = 0) -> dict[str, str]:
        airflow_home = airflow_home or self.state_dir / "airflow"
        return {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__MAX_MAP_LENGTH": "10000",
            "AIRFLOW_CONN_AWS_DEFAULT": self.aws_conn_json(),
            "AIRFLOW_CONN_POSTGRES_DEFAULT": self.postgres.airflow_conn_json(self.database),
            "AIRFLOW_VAR_IAM_AUDIT_BUCKET": self.bucket,
            "IAM_AUDIT_TASK_RETRIES": str(retries),
            "IAM_AUDIT_RETRY_DELAY_SECONDS": "1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "include"), os.environ.get("PYTHONPATH")])),
        }

    def write_env_file(self, path: Path | None = None) -> Path:
        path = path or self.state_dir / "env.sh"
        lines = [f"export {k}={_shell_quote(v)}" for k, v in sorted(self.airflow_env().items())]
        path.write_text("\n".join(lines) + "\n")
        return path


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _pid_file(state_dir: Path) -> Path:
    return state_dir / "emulator.json"


def stop_emulator(state_dir: Path = STATE_DIR) -> None:
    info_file = _pid_file(state_dir)
    if info_file.exists():
        info = json.loads(info_file.read_text())
        try:
            os.kill(info["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        info_file.unlink()


def up(state_dir: Path = STATE_DIR, accounts: int = 5, users: int = 8, seed: int = 42,
       port: int | None = None, fresh_emulator: bool = True) -> tuple[Stack, dict]:
    """Start PostgreSQL and a freshly seeded emulator; returns the stack and the seed manifest."""
    from iam_audit.emulator.process import start_emulator

    state_dir.mkdir(parents=True, exist_ok=True)
    postgres = start_postgres(state_dir / "pg", tcp=True)  # TCP on 127.0.0.1 for BI tools
    postgres.create_database(COMPLIANCE_DB)
    if fresh_emulator:
        stop_emulator(state_dir)
    emulator = start_emulator(port=port, log_path=str(state_dir / "emulator.log"))
    _pid_file(state_dir).write_text(json.dumps({"pid": emulator.proc.pid, "url": emulator.url}))
    manifest = emulator.seed(accounts=accounts, users=users, seed=seed)
    stack = Stack(postgres=postgres, emulator_url=emulator.url, state_dir=state_dir, emulator=emulator)
    stack.boto3_client("s3").create_bucket(Bucket=stack.bucket)
    stack.write_env_file()
    return stack, manifest


def down(state_dir: Path = STATE_DIR) -> None:
    stop_emulator(state_dir)
    pg_dir = state_dir / "pg"
    if (pg_dir / "postmaster.pid").exists():
        EmbeddedPostgres(pg_dir, "").stop()
