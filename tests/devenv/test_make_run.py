"""`make run` refuses to start without the contract's required settings, naming them, and looks them
up where the run's tasks will: the environment, then Airflow's metadata database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from iam_audit_dev.devenv.runner import airflow_bin

from tests.conftest import PROJECT_ROOT


def bare_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW__", "AIRFLOW_HOME"))}
    env.update({"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    return env


def test_make_run_without_settings_names_them_and_starts_nothing(tmp_path):
    env = bare_env(tmp_path)
    done = subprocess.run([sys.executable, "-m", "iam_audit_dev.devenv.cli", "run"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    for name in ("connection aws_default", "connection postgres_default", "Variable iam_audit_bucket"):
        assert name in done.stderr
    assert "DAG run" not in done.stdout  # no run was started
    assert not (tmp_path / "airflow" / "run.log").exists()


def test_settings_in_the_metadata_database_count(tmp_path):
    env = bare_env(tmp_path)
    env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps({"conn_type": "aws"})
    subprocess.run([airflow_bin(), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    subprocess.run([airflow_bin(), "variables", "set", "iam_audit_bucket", "some-bucket"], env=env, check=True,
                   capture_output=True, timeout=300)
    code = "import json; from iam_audit_dev.devenv.cli import missing_settings; print(json.dumps(missing_settings({})))"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        "connection postgres_default (e.g. AIRFLOW_CONN_POSTGRES_DEFAULT in the environment)"]
