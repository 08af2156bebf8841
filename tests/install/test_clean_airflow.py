"""make test-install: the built wheel in clean Airflow installs, as a user's Airflow gets it.

For the oldest and the newest supported Airflow (SUPPORTED_AIRFLOW), a new venv gets Airflow and the
providers under the vendored constraints (deploy/constraints/), then only the wheel; an empty
AIRFLOW_HOME holds nothing but dags/aws_iam_cis.py; the contract's connections and Variables point
at the emulator and the embedded PostgreSQL (started from the dev venv). The DAG runs with
`airflow dags test` from a temporary folder, and:
  - its verdicts equal those of a `make run`-style run (the dev venv, the checkout) on the same
    organisation and date;
  - the DAG parses, and the Compliance page (airflow.plugins entry point) answers, with nothing from
    the checkout on sys.path and iam_audit imported from the venv's site-packages.
The Astro project layout (deploy/build.py astro) runs the DAG the same way from its own folder, and
MWAA's plugins.zip (deploy/build.py mwaa) installs offline (--no-index) into an Airflow venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, TEST_STATE
from tests.install.build import TIMINGS, build_dist

pytestmark = pytest.mark.install

# The oldest and the newest Airflow the package supports (pyproject.toml: apache-airflow>=3.2.0,<4).
SUPPORTED_AIRFLOW = ("3.2.0", "3.3.2")
PROVIDERS = ("apache-airflow-providers-amazon", "apache-airflow-providers-postgres")
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
BASE_PYTHON = Path(sys.base_prefix) / "bin" / f"python{PYTHON}"
STATE = TEST_STATE / "install"
# The clean venvs live outside the checkout: nothing under it may be on their sys.path.
VENVS = Path(os.environ.get("IAM_AUDIT_INSTALL_VENVS", tempfile.gettempdir())) / "iam-audit-install-venvs"
DAG_ID = "aws_iam_cis"
REFERENCE_DB: list[str] = []


def constraints_file(airflow: str) -> Path:
    path = PROJECT_ROOT / "deploy" / "constraints" / f"constraints-{airflow}-python{PYTHON}.txt"
    assert path.is_file(), f"no vendored constraints for Airflow {airflow} on Python {PYTHON}: " \
                           f"deploy/constraints/refresh.sh {airflow} python{PYTHON}"
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything pointing at the checkout or the dev venv."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV", "IAM_AUDIT", "PYTEST"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(PROJECT_ROOT)))
    env.update(extra)
    return env


def timed(label: str):
    class _Timer:
        def __enter__(self):
            self.start = time.monotonic()

        def __exit__(self, *exc):
            TIMINGS[label] = round(time.monotonic() - self.start, 1)

    return _Timer()


def new_airflow_venv(name: str, airflow: str) -> Path:
    """A new venv with Airflow and the providers the package uses, under the constraints; no iam-audit."""
    venv = VENVS / f"venv-{name}"
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(BASE_PYTHON), "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"apache-airflow=={airflow}", *PROVIDERS, "-c", str(constraints_file(airflow))],
                   check=True, env=clean_env(), cwd=STATE)
    return venv


def run(venv: Path, args: list[str], env: dict[str, str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], env=env, cwd=cwd, **kwargs)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """`make dist`: wheel and sdist from the checkout."""
    out = tmp_path_factory.mktemp("dist")
    with timed("build wheel + sdist"):
        wheel = build_dist(out, sdist=True)
    assert list(out.glob("iam_audit-*.tar.gz"))
    return wheel


@pytest.fixture(scope="module")
def organisation(postgres, seeded_emulator):
    """The emulated organisation and PostgreSQL of the dev venv, and the day's date."""
    from iam_audit_dev.devenv.stack import Stack

    STATE.mkdir(parents=True, exist_ok=True)
    stack = Stack(postgres=postgres, emulator_url=seeded_emulator.url, state_dir=STATE, emulator=seeded_emulator)
    return stack, datetime.now(UTC).date().isoformat()


def new_target(stack, label: str) -> tuple[str, str]:
    """A database and a bucket of their own for one run."""
    database, bucket = f"inst_{label}_{uuid.uuid4().hex[:6]}", f"inst-{label}-{uuid.uuid4().hex[:6]}"
    stack.postgres.create_database(database)
    stack.boto3_client("s3").create_bucket(Bucket=bucket)
    return database, bucket


def verdicts(stack, database: str, day: str) -> dict:
    with stack.postgres.connect(database) as conn:
        rows = conn.execute("SELECT framework, check_id, account_id, resource_id, status, reason "
                            "FROM aws_policy_results WHERE snapshot_date = %s", (day,)).fetchall()
    return {(f, c, a, r): (s, why) for f, c, a, r, s, why in rows}


@pytest.fixture(scope="module")
def reference(organisation):
    """The verdicts of a `make run`-style run: the dev venv, the checkout's dags/, the same organisation."""
    from iam_audit_dev.devenv.runner import migrate, run_dag

    stack, day = organisation
    database, bucket = new_target(stack, "ref")
    stack.database, stack.bucket = database, bucket
    env = stack.airflow_env(airflow_home=STATE / f"airflow-ref-{database}")
    migrate(env)
    with timed("reference run (dev venv)"):
        result = run_dag(env, logical_date=day, log_file=STATE / "reference-run.log", progress=None)
    assert result.state == "success", f"reference run: {result.failed_tasks}; see {result.log_file}"
    found = verdicts(stack, database, day)
    assert len(found) > 100 and {s for s, _ in found.values()} >= {"pass", "fail"}
    REFERENCE_DB.append(database)
    return found


def contract_env(stack, database: str, bucket: str, airflow_home: Path) -> dict[str, str]:
    postgres = stack.postgres.airflow_conn_json(database)
    return clean_env(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_AWS_DEFAULT=stack.aws_conn_json(),
        AIRFLOW_CONN_POSTGRES_DEFAULT=postgres,
        AIRFLOW_CONN_COMPLIANCE_READER=postgres,
        AIRFLOW_VAR_IAM_AUDIT_BUCKET=bucket,
        AWS_EC2_METADATA_DISABLED="true",
        IAM_AUDIT_TASK_RETRIES="0",
    )


def run_dag_in(venv: Path, env: dict[str, str], cwd: Path, day: str, log: Path, pools: list[tuple]) -> None:
    """`airflow db migrate`, the pools, `airflow dags test` from cwd; asserts the run succeeded."""
    assert run(venv, ["airflow", "db", "migrate"], env, cwd, capture_output=True).returncode == 0
    for name, slots, description in pools:
        run(venv, ["airflow", "pools", "set", name, str(slots), description], env, cwd, check=True,
            capture_output=True)
    with open(log, "w") as out:
        done = run(venv, ["airflow", "dags", "test", DAG_ID, day], env, cwd, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    assert done.returncode == 0, f"airflow dags test failed; see {log}"
    assert f"DagRun Finished: dag_id={DAG_ID}" in text and "state=success" in text.split("DagRun Finished")[-1], \
        f"the run did not succeed; see {log}"


PROBE = r'''
import json, sys, os
from pathlib import Path

checkout = Path(sys.argv[1]).resolve()
out = {"sys_path_in_checkout": [p for p in sys.path if p and Path(p).resolve().is_relative_to(checkout)]}

from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=os.path.join(os.environ["AIRFLOW_HOME"], "dags"))
out["dags"] = sorted(bag.dag_ids)
out["import_errors"] = {k: v[-500:] for k, v in bag.import_errors.items()}

import iam_audit, iam_audit.integrity
from importlib.metadata import version
out["iam_audit_file"] = iam_audit.__file__
out["in_site_packages"] = Path(iam_audit.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()) \
    and "site-packages" in iam_audit.__file__
out["version"] = version("iam-audit")
out["integrity"] = iam_audit.integrity.problems()
out["modules_from_checkout"] = sorted(n for n, m in list(sys.modules.items())
                                      if getattr(m, "__file__", None)
                                      and Path(m.__file__).resolve().is_relative_to(checkout))

from airflow import plugins_manager
apps, _ = plugins_manager.get_fastapi_plugins()
out["plugin_errors"] = plugins_manager.get_import_errors()
app = next(a["app"] for a in apps if a.get("url_prefix") == "/compliance")
views = plugins_manager._get_ui_plugins()[0]
out["external_views"] = [v.get("name") for v in views]

from airflow.api_fastapi.app import init_auth_manager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi.testclient import TestClient
manager = init_auth_manager()
token = manager.generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
client = TestClient(app)
page = client.get("/", headers={"Authorization": f"Bearer {token}"})
summary = client.get("/api/summary", headers={"Authorization": f"Bearer {token}"})
out["page_status"], out["anonymous_status"] = page.status_code, client.get("/").status_code
out["page_has_results"] = 'id="no-results"' not in page.text and 'id="connection-warning"' not in page.text
out["summary_status"] = summary.status_code
out["summary_keys"] = sorted(summary.json()) if summary.status_code == 200 else summary.text[:300]
print("PROBE " + json.dumps(out))
'''


def probe(venv: Path, env: dict[str, str], cwd: Path) -> dict:
    """Run PROBE with the venv's Python from cwd (a temporary folder: no checkout on sys.path)."""
    script = cwd / "probe_install.py"
    script.write_text(PROBE)
    # The test's compliance_reader is the superuser of the embedded PostgreSQL, which the page refuses
    # unless told (a read-only login is the production setting).
    env = {**env, "IAM_AUDIT_PAGE_ALLOW_READ_WRITE_LOGIN": "true"}
    done = run(venv, ["python", str(script), str(PROJECT_ROOT)], env, cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("PROBE "))
    found = json.loads(line.removeprefix("PROBE "))
    found["stderr"] = (done.stdout + done.stderr)[-3000:]
    return found


def assert_clean_install(found: dict, version: str) -> None:
    assert found["sys_path_in_checkout"] == []
    assert found["modules_from_checkout"] == []
    assert found["in_site_packages"], found["iam_audit_file"]
    assert found["version"] == version
    assert found["integrity"] == []
    assert found["import_errors"] == {}
    assert found["dags"] == [DAG_ID]
    assert found["plugin_errors"] == {}
    assert "Compliance" in found["external_views"]
    assert (found["page_status"], found["anonymous_status"], found["summary_status"]) == (200, 401, 200), \
        found["stderr"]
    assert found["page_has_results"]


@pytest.mark.parametrize("airflow", SUPPORTED_AIRFLOW)
def test_the_wheel_runs_the_dag_in_a_clean_airflow(airflow, dist, organisation, reference, tmp_path):
    stack, day = organisation
    with timed(f"venv Airflow {airflow} + providers (constraints)"):
        venv = new_airflow_venv(airflow, airflow)
    with timed(f"pip install wheel into Airflow {airflow}"):
        run(venv, ["python", "-m", "pip", "install", "-q", str(dist), "-c", str(constraints_file(airflow))],
            clean_env(), tmp_path, check=True)
    home = tmp_path / "airflow-home"
    (home / "dags").mkdir(parents=True)
    shutil.copy2(PROJECT_ROOT / "dags" / "aws_iam_cis.py", home / "dags" / "aws_iam_cis.py")
    database, bucket = new_target(stack, airflow.replace(".", ""))
    env = contract_env(stack, database, bucket, home)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    with timed(f"DAG run in Airflow {airflow}"):
        run_dag_in(venv, env, cwd, day, STATE / f"run-{airflow}.log",
                   [("iam_audit_aws", 16, "Concurrent AWS API work of aws_iam_cis")])
    assert sorted(p.name for p in (home / "dags").iterdir() if p.is_file()) == ["aws_iam_cis.py"]
    assert verdicts(stack, database, day) == reference
    assert_clean_install(probe(venv, env, cwd), dist.name.split("-")[1])


def test_the_astro_project_layout_runs_the_dag(dist, organisation, reference, tmp_path):
    """deploy/build.py astro: what the Astro Runtime image does with the folder (its requirements.txt,
    then the Dockerfile's install of the wheel from include/), airflow_settings.yaml's connections,
    Variables and pool, the DAG from its dags/. No Docker here: `astro dev start` is not run."""
    stack, day = organisation
    airflow = SUPPORTED_AIRFLOW[-1]
    project = tmp_path / "astro-project"
    subprocess.run([sys.executable, str(PROJECT_ROOT / "deploy" / "build.py"), "astro", "--wheel", str(dist),
                    "--out", str(project)], check=True, stdout=subprocess.DEVNULL)
    with timed("venv Astro layout (Airflow + providers)"):
        venv = new_airflow_venv("astro", airflow)
    pip = ["python", "-m", "pip", "install", "-q"]
    requirements = [r for r in (project / "requirements.txt").read_text().splitlines() if r and r[0] != "#"]
    if requirements:
        run(venv, [*pip, "-r", "requirements.txt"], clean_env(), project, check=True)
    for line in (project / "Dockerfile").read_text().splitlines():
        if line.startswith("RUN pip install"):
            run(venv, [*pip, *line.removeprefix("RUN pip install").split()], clean_env(), project, check=True)
    settings = yaml.safe_load((project / "airflow_settings.yaml").read_text())["airflow"]
    database, bucket = new_target(stack, "astro")
    env = contract_env(stack, database, bucket, project)
    # airflow_settings.yaml names the connections and Variables; their values here are the test stack's.
    stack_conns = {"aws_default": stack.aws_conn_json(),
                   "postgres_default": stack.postgres.airflow_conn_json(database),
                   "compliance_reader": stack.postgres.airflow_conn_json(database)}
    for conn in settings["connections"]:
        assert json.loads(stack_conns[conn["conn_id"]])["conn_type"] == conn["conn_type"]
        env[f"AIRFLOW_CONN_{conn['conn_id'].upper()}"] = stack_conns[conn["conn_id"]]
    for variable in settings["variables"]:
        env[f"AIRFLOW_VAR_{variable['variable_name'].upper()}"] = variable["variable_value"]
    env["AIRFLOW_VAR_IAM_AUDIT_BUCKET"] = bucket
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(project / "dags")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    with timed("DAG run from the Astro layout"):
        run_dag_in(venv, env, cwd, day, STATE / "run-astro.log",
                   [(p["pool_name"], p["pool_slot"], p["pool_description"]) for p in settings["pools"]])
    assert verdicts(stack, database, day) == reference


def test_the_mwaa_bundle_installs_offline(dist, organisation, reference, tmp_path):
    """deploy/build.py mwaa: plugins.zip unpacked where MWAA puts it, requirements.txt installed with
    --no-index into an Airflow venv that has only what MWAA's image has (Airflow and providers)."""
    stack, day = organisation
    airflow = SUPPORTED_AIRFLOW[-1]
    bundle = tmp_path / "mwaa"
    with timed("MWAA bundle (downloads the dependency wheels)"):
        subprocess.run([sys.executable, str(PROJECT_ROOT / "deploy" / "build.py"), "mwaa", "--wheel", str(dist),
                        "--out", str(bundle), "--airflow", airflow, "--python", PYTHON], check=True,
                       stdout=subprocess.DEVNULL)
    with timed("venv MWAA stand-in (Airflow + providers)"):
        venv = new_airflow_venv("mwaa", airflow)
    plugins = tmp_path / "usr-local-airflow-plugins"
    with zipfile.ZipFile(bundle / "plugins.zip") as archive:
        archive.extractall(plugins)
    requirements = (bundle / "requirements.txt").read_text().replace("/usr/local/airflow/plugins", str(plugins))
    (tmp_path / "requirements.txt").write_text(requirements)
    # No index at all: neither PyPI nor this machine's pip configuration.
    offline = clean_env(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS="")
    with timed("MWAA offline install"):
        done = run(venv, ["python", "-m", "pip", "install", "-r", str(tmp_path / "requirements.txt")], offline,
                   tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    home = tmp_path / "airflow-home"
    (home / "dags").mkdir(parents=True)
    shutil.copy2(bundle / "dags" / "aws_iam_cis.py", home / "dags" / "aws_iam_cis.py")
    env = contract_env(stack, *new_target(stack, "mwaa"), home)
    # the page reads the reference run's verdicts
    env["AIRFLOW_CONN_COMPLIANCE_READER"] = stack.postgres.airflow_conn_json(REFERENCE_DB[0])
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    assert run(venv, ["airflow", "db", "migrate"], env, cwd, capture_output=True).returncode == 0
    assert_clean_install(probe(venv, env, cwd), dist.name.split("-")[1])
