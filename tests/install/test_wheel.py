"""The wheel holds the runtime package and nothing else: its SQL, catalogue, policies, templates and
static files as package data, the Compliance page's entry point, and no dev tool or test double."""

from __future__ import annotations

import ast
import zipfile

from tests.conftest import PROJECT_ROOT

SRC = PROJECT_ROOT / "src"
# Package data: every file of these folders must be in the wheel, byte for byte.
DATA_DIRS = ("iam_audit/sql", "iam_audit/policies", "iam_audit/templates", "iam_audit/export/templates",
             "iam_audit/web/static")


def _names(wheel) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _imported_roots(source: bytes) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_wheel_has_no_dev_tools_or_emulator(wheel):
    names = _names(wheel)
    assert not [n for n in names if n.startswith(("iam_audit_dev", "tests/", "tools/", "dags/"))]
    assert not [n for n in names if any(w in n for w in ("emulator", "standin", "devenv"))]
    importing_moto = [n for n, data in names.items() if n.endswith(".py") and
                      {"moto", "pgserver", "pytest", "iam_audit_dev"} & _imported_roots(data)]
    assert importing_moto == []
    tops = {n.split("/")[0] for n in names}
    assert tops == {"iam_audit", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}


def test_wheel_carries_every_package_data_file(wheel):
    names = _names(wheel)
    expected = {p.relative_to(SRC).as_posix(): p.read_bytes()
                for folder in DATA_DIRS for p in (SRC / folder).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
    assert len([n for n in expected if n.startswith("iam_audit/sql/checks/")]) > 20
    missing = sorted(set(expected) - set(names))
    assert missing == []
    assert [n for n, data in expected.items() if names[n] != data] == []
    assert names["iam_audit/VERSION"] == (SRC / "iam_audit/VERSION").read_bytes()
    # every module of the package, too
    modules = {p.relative_to(SRC).as_posix() for p in (SRC / "iam_audit").rglob("*.py")}
    assert sorted(modules - set(names)) == []


def test_wheel_registers_the_compliance_page_and_declares_its_version(wheel):
    names = _names(wheel)
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    entry_points = names[f"{dist_info}/entry_points.txt"].decode()
    assert "[airflow.plugins]" in entry_points
    assert "iam_audit_compliance = iam_audit.web.plugin:CompliancePlugin" in entry_points
    metadata = names[f"{dist_info}/METADATA"].decode()
    version = (SRC / "iam_audit/VERSION").read_text().strip()
    assert f"\nVersion: {version}\n" in metadata
    requires = [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")]
    assert any(r.startswith("apache-airflow<4,>=3.2") or r.startswith("apache-airflow>=3.2") for r in requires)
    # ranges, never the dev lock's pins
    assert not [r for r in requires if "==" in r.split(";")[0]]
    assert not [r for r in requires if r.split(";")[0].strip().startswith(("moto", "pgserver", "pytest", "ruff"))]
