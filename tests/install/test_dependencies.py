"""Every module src/iam_audit imports is the standard library's, the package's own, or comes from a
distribution pyproject.toml declares (dependencies or an extra): an installed wheel never meets an
ImportError that the dev venv's extra packages hid."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "iam_audit"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_norm(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in requirements}


def _imports() -> dict[str, set[str]]:
    """Imported module name -> the files importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name, set()).add(path.relative_to(PACKAGE).as_posix())
    return found


def _distribution(module: str, index: dict[str, list[str]]) -> str | None:
    parts = module.split(".")
    if parts[0] == "airflow":
        # providers are namespace packages of their own distributions; the rest is apache-airflow's
        if parts[1:2] == ["providers"] and len(parts) > 2:
            name = parts[2]
            if name == "common" and len(parts) > 3:
                name = f"common-{parts[3]}"
            return f"apache-airflow-providers-{_norm(name)}"
        return "apache-airflow"
    owners = index.get(parts[0])
    return _norm(owners[0]) if owners else None


def test_every_import_is_declared():
    index = packages_distributions()
    declared = _declared()
    undeclared = {}
    for module, files in sorted(_imports().items()):
        root = module.split(".")[0]
        if root in sys.stdlib_module_names or root in ("iam_audit", "__future__"):
            continue
        dist = _distribution(module, index)
        if dist is None or dist not in declared:
            undeclared[module] = (dist, sorted(files))
    assert undeclared == {}


def test_the_declared_airflow_range_starts_where_the_task_sdk_apis_do():
    """airflow.sdk.exceptions and airflow.sdk.lineage, which the package imports, first shipped with
    Airflow 3.2 (task SDK 1.2): the range must not promise older releases."""
    imports = _imports()
    assert "airflow.sdk.lineage" in imports and "airflow.sdk.exceptions" in imports
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    (airflow,) = [r for r in project["dependencies"] if re.match(r"apache-airflow[<>=]", r)]
    assert ">=3.2" in airflow and "<4" in airflow
