"""The direction of imports in the runtime package, read from its source with ast: the stage packages
never import the Airflow-facing task module (or the DAG), nor Airflow at module level; the DAG module
imports only the task module and the catalogue (built-in and custom controls)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "iam_audit"
STAGES = ("ingest", "evaluate", "reporting", "alerting", "export")
AIRFLOW_FACING = {"iam_audit.tasks", "iam_audit.dag"}


def package_of(path: Path) -> str:
    """The package a module's relative imports start from."""
    return ".".join(path.relative_to(PACKAGE.parent).parent.parts)


def imported(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The modules an import statement names; `from a import b` names a.b as well (b may be a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the importing module's package, one level up per extra dot
        parts = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join([*parts, *([base] if base else [])])
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def imports(path: Path, module_level_only: bool = False) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.extend((child.lineno, name) for name in imported(child, package_of(path)))
            visit(child)

    visit(tree)
    return found


def is_under(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


def stage_modules() -> list[Path]:
    paths = sorted(p for stage in STAGES for p in (PACKAGE / stage).rglob("*.py"))
    assert len(paths) > 20, "the stage packages moved: update STAGES"
    return paths


def test_stage_packages_never_import_the_task_module_or_the_dag():
    wrong = [f"{p.relative_to(PACKAGE)}:{line} imports {name}" for p in stage_modules()
             for line, name in imports(p) if any(is_under(name, m) for m in AIRFLOW_FACING)]
    assert not wrong, wrong


def test_stage_packages_import_airflow_only_inside_functions():
    """Importing a stage (tests, the CLI, the dev tools) needs no Airflow: only the calls that use a hook do."""
    wrong = [f"{p.relative_to(PACKAGE)}:{line} imports {name} at module level" for p in stage_modules()
             for line, name in imports(p, module_level_only=True) if is_under(name, "airflow")]
    assert not wrong, wrong
    plan = PACKAGE / "plan.py"
    assert not [name for _, name in imports(plan) if is_under(name, "airflow") or name in AIRFLOW_FACING]


def test_the_dag_module_imports_only_the_task_module_and_the_catalogue():
    allowed = ("iam_audit.tasks", "iam_audit.evaluate.catalogue", "iam_audit.custom", "iam_audit.integrity")
    own = [(line, name) for line, name in imports(PACKAGE / "dag.py") if is_under(name, "iam_audit")]
    assert own, "dag.py imports nothing of iam_audit: the test reads the wrong file"
    wrong = [f"dag.py:{line} imports {name}" for line, name in own
             if name != "iam_audit" and not any(is_under(name, a) for a in allowed)]
    assert not wrong, wrong


def test_nothing_in_the_package_imports_the_dag_module():
    wrong = [f"{p.relative_to(PACKAGE)}:{line}" for p in sorted(PACKAGE.rglob("*.py")) if p.name != "dag.py"
             for line, name in imports(p) if is_under(name, "iam_audit.dag")]
    assert not wrong, wrong
