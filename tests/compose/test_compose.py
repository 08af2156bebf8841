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
AIRFLOW_VERSION = re.search(r"^apache-airflow==([^\s;]+)", (ROOT / "requirements.txt").read_text(), re.M).group(1)
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
    assert module == "iam_audit_dev.emulator.server"
    assert (ROOT / "tools" / Path(*module.split("."))).with_suffix(".py").exists()
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
    assert "/opt/airflow/dags" in mounts
    # the package is installed in the image, as in a user's Airflow, never mounted over a source path
    assert not mounts & {"/opt/airflow/plugins", "/opt/airflow/include", "/opt/airflow/sql"}


def test_healthchecks_present():
    for name, service in SERVICES.items():
        if name in ("airflow-init", "moto-init"):
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_environment_follows_the_contract():
    import json

    env = SERVICES["airflow-worker"]["environment"]
    assert "PYTHONPATH" not in env  # the package is installed: nothing on the path by hand
    assert int(env["AIRFLOW__CORE__MAX_MAP_LENGTH"]) > 1024
    aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["conn_type"] == "aws" and aws["extra"]["endpoint_url"] == "http://moto:5000"
    pg = json.loads(env["AIRFLOW_CONN_POSTGRES_DEFAULT"])
    assert pg["conn_type"] == "postgres" and pg["host"] == "postgres" and pg["schema"] == "compliance"
    assert env["AIRFLOW_VAR_IAM_AUDIT_BUCKET"]
    init_sql = "\n".join(p.read_text() for p in sorted((ROOT / "docker" / "postgres-init").glob("*.s*")))
    assert "CREATE DATABASE compliance" in init_sql


REQUIRED_SECRETS = ("AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "COMPLIANCE_READER_PASSWORD", "POSTGRES_PASSWORD",
                    "AIRFLOW_DB_PASSWORD", "IAM_AUDIT_DB_PASSWORD")
needs_compose = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                   reason="docker-compose (Debian package) not installed")


def compose_config(**env) -> subprocess.CompletedProcess:
    import os

    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED_SECRETS}
    return subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yaml"), "config"],
                          cwd=ROOT, capture_output=True, text=True, env={**clean, **env})


@needs_compose
def test_docker_compose_config_is_valid():
    result = compose_config(**{name: "set-by-the-test" for name in REQUIRED_SECRETS})
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["services"]["airflow-apiserver"]["ports"] == ["127.0.0.1:8080:8080/tcp"]


@needs_compose
@pytest.mark.parametrize("missing", REQUIRED_SECRETS)
def test_refuses_to_start_without_each_secret(missing):
    result = compose_config(**{name: "set-by-the-test" for name in REQUIRED_SECRETS if name != missing})
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr


def test_secrets_have_no_defaults():
    text = (ROOT / "docker-compose.yaml").read_text()
    for name in REQUIRED_SECRETS:
        assert re.search(r"\$\{" + name + r":\?[^}]+\}", text), name
        assert not re.search(r"\$\{" + name + r":?-", text), f"{name} has a default"
    assert "change-me" not in text


def _published(port: str | dict) -> str:
    return port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"


def test_every_published_port_is_bound_to_localhost():
    assert SERVICES["airflow-apiserver"]["ports"] == ["127.0.0.1:8080:8080"]
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert _published(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_admin_password_is_generated_not_shipped():
    env = SERVICES["airflow-apiserver"]["environment"]
    passwords = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    # on a named volume of the API server, not in the repository or a bind mount
    assert any(v.startswith("airflow-auth:") and passwords.startswith(v.split(":")[1] + "/")
               for v in SERVICES["airflow-apiserver"]["volumes"])
    assert "airflow-auth" in COMPOSE["volumes"]
    assert not list(ROOT.glob("docker/*password*"))
    for name, service in SERVICES.items():
        if name != "airflow-apiserver":
            assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" not in service.get("environment", {}), name
    assert "/opt/airflow/auth" in (ROOT / "Dockerfile").read_text()   # writable by the airflow user


def test_postgres_and_redis_are_pinned_exactly():
    assert re.fullmatch(r"postgres:\d+\.\d+(-[a-z]+)?(@sha256:[0-9a-f]{64})?", SERVICES["postgres"]["image"])
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+(-[a-z]+)?(@sha256:[0-9a-f]{64})?", SERVICES["redis"]["image"])


def _stages() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text()
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


TEST_TOOLS = ("moto", "pytest", "ruff", "pgserver", "playwright", "responses")


def test_test_tools_stay_out_of_the_runtime_image():
    stages = _stages()
    assert set(stages) == {"runtime", "emulator"}
    runtime = stages["runtime"]
    for tool in TEST_TOOLS:
        assert tool not in runtime, f"the runtime stage installs {tool}"
    # the stages install their locks; the runtime lock pins no test tool, the emulator's pins moto
    assert "requirements-runtime.txt" in runtime and "requirements-emulator.txt" in stages["emulator"]
    runtime_lock = {line.split("==")[0] for line in (ROOT / "requirements-runtime.txt").read_text().splitlines()
                    if "==" in line}
    assert not runtime_lock & set(TEST_TOOLS), runtime_lock & set(TEST_TOOLS)
    assert re.search(r"^moto==", (ROOT / "docker" / "requirements-emulator.txt").read_text(), re.M)
    for name, service in SERVICES.items():
        if name in AIRFLOW_SERVICES:
            assert service["build"]["target"] == "runtime", name
        elif name in ("moto", "moto-init"):
            assert service["build"]["target"] == "emulator", name
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"tests", ".venv", ".devenv", ".git"} <= set(ignored)


def _closure(requirements: list[str]) -> set[str]:
    """Distributions a pip install of `requirements` pulls in, from the installed metadata."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    seen: dict[str, set[str]] = {}
    stack = [Requirement(r) for r in requirements]
    while stack:
        req = stack.pop()
        key = norm(req.name)
        if key in seen and set(req.extras) <= seen[key]:
            continue
        extras = seen.setdefault(key, set())
        extras.update(req.extras)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            continue
        for raw in dist.requires or []:
            dep = Requirement(raw)
            if dep.marker and not any(dep.marker.evaluate({**default_environment(), "extra": e})
                                      for e in extras | {""}):
                continue
            stack.append(dep)
    return set(seen)


def test_runtime_requirements_cover_the_pipeline_and_exclude_test_tools():
    import ast
    from importlib.metadata import packages_distributions

    listed = [line.strip() for line in (ROOT / "requirements-runtime.in").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    closure = _closure(listed)
    assert not closure & set(TEST_TOOLS), closure & set(TEST_TOOLS)
    # every third-party module the DAG, the plugin and src/iam_audit import at run time
    # (the emulator and the developer tools aside) comes from a distribution of the closure
    providers = packages_distributions()
    sources = [*ROOT.glob("dags/*.py"), *ROOT.glob("src/iam_audit/**/*.py")]
    missing = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top == "iam_audit":  # the package itself
                    continue
                if top in providers and not {re.sub(r"[-_.]+", "-", d).lower() for d in providers[top]} & closure:
                    missing.add(f"{path.relative_to(ROOT)}: {top}")
    assert not missing, sorted(missing)


def test_each_service_gets_only_the_connections_it_needs():
    def connections(name: str) -> set[str]:
        return {k for k in SERVICES[name].get("environment", {}) if k.startswith("AIRFLOW_CONN_")}

    assert connections("airflow-worker") == {"AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_CONN_POSTGRES_DEFAULT"}
    assert connections("airflow-apiserver") == {"AIRFLOW_CONN_COMPLIANCE_READER"}
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-init", "moto",
                 "moto-init", "postgres", "redis"):
        assert connections(name) == set(), name
    reader = SERVICES["airflow-apiserver"]["environment"]["AIRFLOW_CONN_COMPLIANCE_READER"]
    assert '"login": "compliance_page"' in reader and "${COMPLIANCE_READER_PASSWORD}" in reader
    init = (ROOT / "docker" / "postgres-init" / "02-compliance-reader.sh").read_text()
    assert "IN ROLE compliance_reader" in init and "COMPLIANCE_READER_PASSWORD" in init


def test_no_airflow_container_holds_a_superusers_password_and_databases_have_other_owners():
    import json

    postgres = SERVICES["postgres"]["environment"]
    assert postgres["POSTGRES_USER"] == "postgres"
    assert postgres["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    superuser = postgres["POSTGRES_USER"]
    text = (ROOT / "docker-compose.yaml").read_text()
    assert "airflow:airflow@" not in text and '"password": "airflow"' not in text
    for name, service in SERVICES.items():
        env = service.get("environment") or {}
        if name != "postgres":
            assert "POSTGRES_PASSWORD" not in env, name
            assert not any("${POSTGRES_PASSWORD" in str(v) for v in env.values()), name
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
            if key in env:
                assert re.search(r"://airflow:\$\{AIRFLOW_DB_PASSWORD:\?", env[key]), (name, key)
    pipeline = json.loads(SERVICES["airflow-worker"]["environment"]["AIRFLOW_CONN_POSTGRES_DEFAULT"])
    assert pipeline["login"] == "iam_audit" != superuser
    init = (ROOT / "docker" / "postgres-init" / "01-databases.sh").read_text()
    for role in ("airflow", "iam_audit"):
        assert re.search(rf"CREATE ROLE {role} LOGIN NOSUPERUSER .*CONNECTION LIMIT \d+;", init), role
    assert "CREATE DATABASE airflow OWNER airflow;" in init
    assert "CREATE DATABASE compliance OWNER iam_audit;" in init


def test_postgres_is_not_published_and_code_is_mounted_read_only():
    assert "ports" not in SERVICES["postgres"]
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source in ("./dags", "./plugins", "./include", "./sql"):
                assert volume.endswith(":ro"), f"{name} mounts {volume} writable"
