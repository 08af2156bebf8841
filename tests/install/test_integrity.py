"""The DAG's parse-time check of the installed package (iam_audit.integrity): the wheel installed into a
folder of its own, then broken the ways a real installation breaks; each gives its own message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

PROBE = "from iam_audit.integrity import verify_installation; verify_installation(); print('whole')"


@pytest.fixture(scope="module")
def pip_installed(wheel, tmp_path_factory):
    """The wheel installed with pip (RECORD and all) into a folder of its own, without its dependencies."""
    site = tmp_path_factory.mktemp("pip-target") / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(site),
                    str(wheel)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return site


@pytest.fixture()
def installed(pip_installed, tmp_path):
    """A copy of that installation for one test to break."""
    site = tmp_path / "site"
    shutil.copytree(pip_installed, site)
    return site


def _verify(site, cwd) -> subprocess.CompletedProcess:
    # The folder first on sys.path: its iam_audit and its dist-info win over the dev venv's editable install.
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True)


def test_a_whole_installation_passes(installed, tmp_path):
    done = _verify(installed, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "whole"


def test_a_missing_check_sql_is_named(installed, tmp_path):
    missing = installed / "iam_audit/sql/checks/root_mfa.sql"
    missing.unlink()
    done = _verify(installed, tmp_path)
    assert done.returncode != 0
    assert "PackageIntegrityError" in done.stderr
    assert f"missing {missing}" in done.stderr
    assert "controls/root_mfa.yaml has no check SQL" in done.stderr


def test_a_missing_catalogue_is_named(installed, tmp_path):
    shutil.rmtree(installed / "iam_audit/sql/catalogue")
    done = _verify(installed, tmp_path)
    assert done.returncode != 0
    assert f"missing folder {installed / 'iam_audit/sql/catalogue/controls'}" in done.stderr
    assert f"missing folder {installed / 'iam_audit/sql/catalogue/frameworks'}" in done.stderr


def test_package_data_of_another_version_is_named(installed, tmp_path):
    (installed / "iam_audit/VERSION").write_text("0.0.9\n")
    version = next(installed.glob("iam_audit-*.dist-info")).name.removesuffix(".dist-info").split("-")[1]
    done = _verify(installed, tmp_path)
    assert done.returncode != 0
    assert f"package data is from iam-audit 0.0.9 but the installed distribution is {version}" in done.stderr


def test_sql_changed_after_install_is_named(installed, tmp_path):
    changed = installed / "iam_audit/sql/views/005_aws_policy_results.sql"
    changed.write_text(changed.read_text() + "\n-- edited in place\n")
    done = _verify(installed, tmp_path)
    assert done.returncode != 0
    assert "changed since iam-audit" in done.stderr and str(changed) in done.stderr


def test_a_stray_copy_before_the_installed_package_is_named(installed, tmp_path):
    """An older copy of iam_audit in a folder earlier on sys.path (a plugins/ folder) shadows the wheel."""
    plugins = tmp_path / "plugins"
    shutil.copytree(installed / "iam_audit", plugins / "iam_audit")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugins), str(installed)])}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert f"iam_audit is imported from {plugins / 'iam_audit'}, but pip installed iam-audit" in done.stderr


def test_the_dag_does_not_parse_without_its_sql(installed, tmp_path):
    """The check runs at every parse of the DAG: Airflow records the message as the DAG file's import error."""
    (installed / "iam_audit/sql/macros/check.sql").unlink()
    env = {**os.environ, "PYTHONPATH": str(installed)}
    parse = "from iam_audit.dag import aws_iam_cis; aws_iam_cis()"   # what the dags-folder file does
    done = subprocess.run([sys.executable, "-c", parse], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert f"missing {installed / 'iam_audit/sql/macros/check.sql'}" in done.stderr
