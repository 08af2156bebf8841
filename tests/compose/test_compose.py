"""docker-compose.yaml and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_VERSION = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
    "airflow-init": "pools set iam_audit_aws 16 \"Concurrent AWS API work of aws_iam_cis\"",
}
BUILT = [name for name, svc in SERVICES.items() if "build" in svc]


def _command(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def test_expected_services_exist():
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis", "moto", "moto-init"} <= set(SERVICES)


def test_airflow_images_match_the_pinned_airflow_version():
    assert set(AIRFLOW_SERVICES) | {"moto", "moto-init"} <= set(BUILT)
    for name in BUILT:
        image = re.sub(r"^\$\{\w+:-(.*)\}$", r"\1", SERVICES[name]["image"])  # ${VAR:-default}
        assert image.rsplit(":", 1)[-1] == AIRFLOW_VERSION, f"{name}: {image} is not Airflow {AIRFLOW_VERSION}"


def test_dockerfile_base_image_matches_the_pinned_airflow_version():
    base = re.search(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert base.startswith(f"apache/airflow:{AIRFLOW_VERSION}-python3.11"), base


def test_commands_are_consistent():
    for name, expected in AIRFLOW_SERVICES.items():
        assert _command(SERVICES[name]) == expected, name
    assert SERVICES["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert SERVICES["airflow-worker"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_moto_runs_this_projects_emulator_and_is_seeded():
    module = re.search(r"python -m (\S+)", _command(SERVICES["moto"])).group(1)
    assert module == "iam_audit.emulator.server"
    assert (ROOT / "include" / Path(*module.split("."))).with_suffix(".py").exists()
    assert "--host 0.0.0.0 --port 5000" in _command(SERVICES["moto"])
    script = _command(SERVICES["moto-init"]).split()[-1]
    local = ROOT / Path(script).relative_to("/opt/airflow")
    assert local.exists(), script
    assert "/_emulator/seed" in local.read_text() and "create_bucket" in local.read_text()
    spec = importlib.util.spec_from_file_location("seed_emulator", local)
    assert spec is not None


def test_mounted_host_paths_exist():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
    mounts = {v.split(":")[1] for v in SERVICES["airflow-scheduler"]["volumes"] if v.startswith(".")}
    assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include", "/opt/airflow/sql"} <= mounts


def test_healthchecks_present():
    for name, service in SERVICES.items():
        if name in ("airflow-init", "moto-init"):
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_environment_follows_the_contract():
    import json

    env = SERVICES["airflow-scheduler"]["environment"]
    assert env["PYTHONPATH"] == "/opt/airflow/include"
    assert int(env["AIRFLOW__CORE__MAX_MAP_LENGTH"]) > 1024
    aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["conn_type"] == "aws" and aws["extra"]["endpoint_url"] == "http://moto:5000"
    pg = json.loads(env["AIRFLOW_CONN_POSTGRES_DEFAULT"])
    assert pg["conn_type"] == "postgres" and pg["host"] == "postgres" and pg["schema"] == "compliance"
    assert env["AIRFLOW_VAR_IAM_AUDIT_BUCKET"]
    init_sql = "\n".join(p.read_text() for p in (ROOT / "docker" / "postgres-init").glob("*.sql"))
    assert "CREATE DATABASE compliance" in init_sql


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_docker_compose_config_is_valid():
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yaml"), "config", "-q"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
