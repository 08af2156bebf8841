"""deploy/: each managed-Airflow artefact built offline and checked against the contract (the package's own
constants for connection ids, Variable names and the pool). The heavy runs are in make test-install."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import zipfile

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from iam_audit import config
from iam_audit.web.queries import READER_CONN_ID
from tests.conftest import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
VERSION = (PROJECT_ROOT / "src" / "iam_audit" / "VERSION").read_text().strip()
CONTRACT_VARIABLES = {getattr(config, n) for n in dir(config) if n.startswith("VAR_")}
# looks like a credential: an AWS key id, a URI with a password, a non-empty password field
SECRET_PATTERNS = (re.compile(r"AKIA[0-9A-Z]{12,}"), re.compile(r"://[^/\s:@'\"]+:[^@\s'\".<]{3,}@"))


@pytest.fixture(scope="module")
def contract():
    from iam_audit import dag

    return {"connections": {dag.AWS_CONN_ID, dag.POSTGRES_CONN_ID, READER_CONN_ID}, "pool": dag.AWS_POOL,
            "airflow": _airflow_range()}


def _airflow_range() -> SpecifierSet:
    import tomllib

    deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(Requirement(d).specifier for d in deps if Requirement(d).name == "apache-airflow")


def _build(*args: str) -> None:
    subprocess.run([sys.executable, str(DEPLOY / "build.py"), *args], check=True, stdout=subprocess.DEVNULL)


def _no_secrets(text: str, where: str) -> None:
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(text), f"{where}: {pattern.search(text).group(0)!r} looks like a credential"


def test_astro_project_from_the_wheel(wheel, tmp_path, contract):
    out = tmp_path / "astro"
    _build("astro", "--wheel", str(wheel), "--out", str(out))
    assert (out / "dags" / "aws_iam_cis.py").read_bytes() == (PROJECT_ROOT / "dags" / "aws_iam_cis.py").read_bytes()
    assert [p.name for p in (out / "include").iterdir()] == [wheel.name]
    assert (out / "include" / wheel.name).read_bytes() == wheel.read_bytes()
    dockerfile = (out / "Dockerfile").read_text()
    assert re.search(r"^FROM \S+/runtime:\S+$", dockerfile, re.M)
    assert f"RUN pip install --no-cache-dir include/{wheel.name}" in dockerfile
    assert [line for line in (out / "requirements.txt").read_text().splitlines() if not line.startswith("#")] == []
    settings = yaml.safe_load((out / "airflow_settings.yaml").read_text())["airflow"]
    assert {c["conn_id"] for c in settings["connections"]} == contract["connections"]
    assert all(not c.get("conn_password") for c in settings["connections"])
    names = {v["variable_name"] for v in settings["variables"]}
    assert config.VAR_BUCKET in names and names <= CONTRACT_VARIABLES
    assert [p["pool_name"] for p in settings["pools"]] == [contract["pool"]]
    env = (out / ".env.example").read_text()
    for line in env.splitlines():
        if line and not line.startswith("#"):
            name = line.split("=", 1)[0]
            assert name.startswith("AIRFLOW_VAR_") and name.removeprefix("AIRFLOW_VAR_").lower() in CONTRACT_VARIABLES
    for conn in re.findall(r"AIRFLOW_CONN_(\w+)=", env):
        assert conn.lower() in contract["connections"]
    for path in out.rglob("*"):
        if path.is_file() and path.suffix != ".whl":
            _no_secrets(path.read_text(), str(path))


def test_astro_project_from_an_index(wheel, tmp_path):
    out = tmp_path / "astro"
    _build("astro", "--wheel", str(wheel), "--out", str(out), "--from-index")
    assert (out / "requirements.txt").read_text() == f"iam-audit=={VERSION}\n"
    assert list((out / "include").iterdir()) == []
    assert "RUN pip" not in (out / "Dockerfile").read_text()


def test_mwaa_bundle_layout(wheel, tmp_path):
    """Offline: the wheel and constraints.txt in plugins.zip (the dependency wheels are downloaded by
    make mwaa-bundle and installed offline by make test-install)."""
    out = tmp_path / "mwaa"
    _build("mwaa", "--wheel", str(wheel), "--out", str(out), "--airflow", "3.3.2", "--python", "3.11",
           "--no-dependency-wheels")
    with zipfile.ZipFile(out / "plugins.zip") as archive:
        names = sorted(archive.namelist())
        constraints = archive.read("constraints.txt").decode()
    assert names == sorted([wheel.name, "constraints.txt"])
    assert "\napache-airflow==3.3.2\n" in constraints
    lines = [line for line in (out / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines == ['--constraint "/usr/local/airflow/plugins/constraints.txt"', "--no-index",
                     "--find-links /usr/local/airflow/plugins", f"iam-audit=={VERSION}"]
    assert (out / "dags" / "aws_iam_cis.py").is_file()


@pytest.mark.parametrize("constraints", sorted((DEPLOY / "constraints").glob("constraints-*.txt")),
                         ids=lambda p: p.stem)
def test_vendored_constraints_satisfy_the_package(wheel, constraints, contract):
    """Every dependency of the wheel is pinned by each vendored constraints file, inside the wheel's range:
    pip can install the wheel beside that Airflow (what MWAA's --no-index install relies on)."""
    spec = importlib.util.spec_from_file_location("deploy_build", DEPLOY / "build.py")
    deploy_build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deploy_build)
    pins = deploy_build._pins(constraints)
    airflow = constraints.name.split("-")[1]
    assert pins["apache-airflow"] == airflow and airflow in contract["airflow"]
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith("METADATA"))).decode()
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist: ") and "extra ==" not in line:
            requirement = Requirement(line.removeprefix("Requires-Dist: "))
            name = re.sub(r"[-_.]+", "-", requirement.name).lower()
            assert name in pins, f"{constraints.name} pins no {name}"
            assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} outside {requirement}"


def test_composer_files_name_this_version_and_the_contract():
    requirements = [line for line in (DEPLOY / "composer" / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith("#")]
    assert requirements == [f"iam-audit=={VERSION}"]
    variables = [line.split("=", 1) for line in (DEPLOY / "composer" / "env-variables.txt").read_text().splitlines()
                 if line and not line.startswith("#")]
    names = {name.removeprefix("AIRFLOW_VAR_").lower() for name, _ in variables}
    assert all(name.startswith("AIRFLOW_VAR_") for name, _ in variables)
    assert config.VAR_BUCKET in names and names <= CONTRACT_VARIABLES
    _no_secrets((DEPLOY / "composer" / "env-variables.txt").read_text(), "composer/env-variables.txt")


def test_helm_values_take_secrets_from_a_secret(contract):
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    from_secret = {s["envName"] for s in values["secret"]}
    plain = {e["name"]: e["value"] for e in values["env"]}
    assert all(s["secretName"] and s["secretKey"] for s in values["secret"])
    # every connection of the contract is set, from the Secret when it may carry a password
    conns = {n.removeprefix("AIRFLOW_CONN_").lower() for n in from_secret | set(plain) if n.startswith("AIRFLOW_CONN_")}
    assert conns == contract["connections"]
    for name, value in plain.items():
        assert not name.startswith("AIRFLOW_CONN_POSTGRES") and "COMPLIANCE_READER" not in name
        if name.startswith("AIRFLOW_CONN_"):
            assert "@" not in value and ":" not in value.split("://", 1)[1].split("?")[0]
    variables = {n.removeprefix("AIRFLOW_VAR_").lower() for n in from_secret | set(plain)
                 if n.startswith("AIRFLOW_VAR_")}
    assert config.VAR_BUCKET in variables and variables <= CONTRACT_VARIABLES
    assert config.VAR_EXTERNAL_ID in {n.removeprefix("AIRFLOW_VAR_").lower() for n in from_secret}
    assert values["airflowVersion"] in contract["airflow"]
    _no_secrets((DEPLOY / "helm" / "values.yaml").read_text(), "helm/values.yaml")
    dockerfile = (DEPLOY / "helm" / "Dockerfile").read_text()
    default = re.search(r"^ARG AIRFLOW_VERSION=(\S+)$", dockerfile, re.M).group(1)
    assert default in contract["airflow"] and default == values["airflowVersion"]
    assert "FROM apache/airflow:${AIRFLOW_VERSION}" in dockerfile
    assert "COPY dags/aws_iam_cis.py /opt/airflow/dags/" in dockerfile

