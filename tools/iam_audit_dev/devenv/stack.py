"""The embedded stack for `make demo`, `make airflow`, tests and benchmarks.

PostgreSQL (pgserver) and the AWS emulator (moto server, patched) run as
background processes whose state lives under .devenv/; this module starts them,
seeds the demo organisation and builds the Airflow environment that points the
`aws_default` and `postgres_default` connections at them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import boto3

from iam_audit_dev import PROJECT_ROOT
from iam_audit_dev.devenv.postgres import EmbeddedPostgres, start_postgres

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
        """Airflow on this stack. Its metadata database is a database of the embedded PostgreSQL (one per
        AIRFLOW_HOME): a scheduler, DAG processor and API server working at once need more than SQLite."""
        airflow_home = airflow_home or self.state_dir / "airflow"
        metadata_db = "airflow" if airflow_home == self.state_dir / "airflow" else \
            "airflow_" + re.sub(r"\W", "_", airflow_home.name)[:50]
        self.postgres.create_database(metadata_db)
        return {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@/{metadata_db}"
                                                   f"?host={self.postgres.socket_dir}&port={self.postgres.port}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            # The Compliance page comes from the package's airflow.plugins entry point, as in a user's Airflow.
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__MAX_MAP_LENGTH": "10000",
            "AIRFLOW_CONN_AWS_DEFAULT": self.aws_conn_json(),
            "AIRFLOW_CONN_POSTGRES_DEFAULT": self.postgres.airflow_conn_json(self.database),
            "AIRFLOW_VAR_IAM_AUDIT_BUCKET": self.bucket,
            "IAM_AUDIT_TASK_RETRIES": str(retries),
            "IAM_AUDIT_RETRY_DELAY_SECONDS": "1",
            "AWS_EC2_METADATA_DISABLED": "true",
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


def _s3_dir(state_dir: Path) -> Path:
    return state_dir / "emulator-s3"


def running_emulator(state_dir: Path = STATE_DIR) -> dict | None:
    """The emulator recorded in state_dir if it still answers: {"pid", "url", "seed", "manifest"}."""
    from iam_audit_dev.emulator.process import Emulator

    info_file = _pid_file(state_dir)
    if not info_file.exists():
        return None
    info = json.loads(info_file.read_text())
    if not _alive(info["pid"]) or not Emulator(None, info["url"], "").health():
        info_file.unlink()
        return None
    return info


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def save_s3(state_dir: Path, emulator_url: str) -> int:
    """Copy every object of the emulator's S3 to state_dir/emulator-s3 (moto keeps S3 in memory only);
    returns the number of objects. The raw snapshots outlive the emulator this way."""
    client = _client(emulator_url, "s3")
    target, index = _s3_dir(state_dir), {}
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    for bucket in (b["Name"] for b in client.list_buckets()["Buckets"]):
        index[bucket] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                obj = client.get_object(Bucket=bucket, Key=item["Key"])
                path = staging / bucket / item["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(obj["Body"].read())
                index[bucket][item["Key"]] = {k: obj[k] for k in _KEPT_ATTRIBUTES if obj.get(k)}
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "index.json").write_text(json.dumps(index))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return sum(len(keys) for keys in index.values())


_KEPT_ATTRIBUTES = ("ContentType", "ContentEncoding", "ServerSideEncryption", "Metadata")


def restore_s3(state_dir: Path, emulator_url: str) -> int:
    """Put the objects save_s3 stored back into a fresh emulator."""
    source = _s3_dir(state_dir)
    if not (source / "index.json").exists():
        return 0
    client = _client(emulator_url, "s3")
    index = json.loads((source / "index.json").read_text())
    for bucket, objects in index.items():
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        for key, attributes in objects.items():
            client.put_object(Bucket=bucket, Key=key, Body=(source / bucket / key).read_bytes(), **attributes)
    return sum(len(keys) for keys in index.values())


def _client(emulator_url: str, service: str):
    return boto3.client(service, endpoint_url=emulator_url, region_name="us-east-1",
                        aws_access_key_id=EMULATOR_ACCESS_KEY, aws_secret_access_key=EMULATOR_SECRET_KEY)


def stop_emulator(state_dir: Path = STATE_DIR, grace: float = 10) -> bool:
    """Save the emulator's S3 to disk, then stop it; True when no emulator is left running."""
    info = running_emulator(state_dir)
    if info is None:
        return True
    save_s3(state_dir, info["url"])
    os.kill(info["pid"], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(info["pid"]) and time.monotonic() < deadline:
        _reap(info["pid"])
        time.sleep(0.1)
    if _alive(info["pid"]):
        os.kill(info["pid"], signal.SIGKILL)
        time.sleep(0.5)
        _reap(info["pid"])
    _pid_file(state_dir).unlink(missing_ok=True)
    return not _alive(info["pid"])


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def up(state_dir: Path = STATE_DIR, accounts: int | None = None, users: int | None = None, seed: int = 42,
       port: int | None = None) -> tuple[Stack, dict]:
    """Start (or reuse) PostgreSQL and the seeded emulator; returns the stack and the seed manifest.

    A running emulator is reused when it was seeded alike (accounts/users None: any seeding). A new
    one is seeded and gets back the S3 objects the previous one held (save_s3), so the raw
    snapshots survive `make stop`, `make demo` and `make airflow` in any order.
    """
    from iam_audit_dev.emulator.process import Emulator, start_emulator

    state_dir.mkdir(parents=True, exist_ok=True)
    postgres = start_postgres(state_dir / "pg", tcp=True)  # TCP on 127.0.0.1 for BI tools
    postgres.create_database(COMPLIANCE_DB)
    wanted = {"accounts": accounts or 5, "users": users or 8, "seed": seed}
    info = running_emulator(state_dir)
    if info and (accounts is None and users is None or info.get("seed") == wanted):
        emulator, manifest = Emulator(None, info["url"], str(state_dir / "emulator.log")), info["manifest"]
    else:
        stop_emulator(state_dir)
        emulator = start_emulator(port=port, log_path=str(state_dir / "emulator.log"), detach=True)
        manifest = emulator.seed(**wanted)
        _pid_file(state_dir).write_text(json.dumps({"pid": emulator.proc.pid, "url": emulator.url,
                                                    "seed": wanted, "manifest": manifest}))
        restore_s3(state_dir, emulator.url)
    stack = Stack(postgres=postgres, emulator_url=emulator.url, state_dir=state_dir, emulator=emulator)
    try:
        stack.boto3_client("s3").create_bucket(Bucket=stack.bucket)
    except stack.boto3_client("s3").exceptions.BucketAlreadyOwnedByYou:
        pass
    stack.write_env_file()
    return stack, manifest


def status(state_dir: Path = STATE_DIR) -> dict[str, str | None]:
    """What of the embedded stack is running: component -> description, or None when stopped."""
    from iam_audit_dev.devenv.postgres import postmaster_pid
    from iam_audit_dev.devenv.services import running

    emulator = running_emulator(state_dir)
    pg = postmaster_pid(state_dir / "pg")
    airflow = running(state_dir / "airflow")
    superset = running(state_dir / "superset")
    return {
        "Airflow (make airflow)": f"pids {sorted(airflow['pids'].values())}, port {airflow['port']}"
        if airflow else None,
        "Superset (make superset)": f"pids {sorted(superset['pids'].values())}, port {superset['port']}"
        if superset else None,
        "AWS emulator": f"pid {emulator['pid']}, {emulator['url']}" if emulator else None,
        "PostgreSQL": f"pid {pg}, {state_dir / 'pg'}" if pg else None,
    }


def down(state_dir: Path = STATE_DIR) -> dict[str, str | None]:
    """Stop Airflow (if `make airflow` runs), Superset (if `make superset` runs), the emulator (its S3
    saved first) and PostgreSQL; returns what is still running (see status)."""
    from iam_audit_dev.devenv.services import stop_recorded

    stop_recorded(state_dir / "airflow")
    stop_recorded(state_dir / "superset")  # before PostgreSQL, which it reads
    stop_emulator(state_dir)
    if (state_dir / "pg" / "postmaster.pid").exists():
        EmbeddedPostgres(state_dir / "pg", "").stop()
    return status(state_dir)
