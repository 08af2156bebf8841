"""docs/adding-a-control.md: every control logic has its SQL file, catalogue entry, fixture test and docs, and
what the guide and the architecture diagram name exists."""

import re

import pytest

from iam_audit.evaluate.catalogue import load_catalogue
from iam_audit.paths import CHECKS_DIR
from tests.conftest import PROJECT_ROOT

LOGICS = sorted({check.logic for check in load_catalogue().checks} | {p.stem for p in CHECKS_DIR.glob("*.sql")})
CONTROLS_DOC = (PROJECT_ROOT / "docs" / "controls.md").read_text()


@pytest.mark.parametrize("logic", LOGICS)
def test_a_control_has_its_four_parts(logic):
    catalogued = {check.logic for check in load_catalogue().checks}
    assert (CHECKS_DIR / f"{logic}.sql").is_file(), f"src/iam_audit/sql/checks/{logic}.sql is missing"
    assert logic in catalogued, f"src/iam_audit/sql/catalogue/controls/{logic}.yaml is missing"
    test_file = PROJECT_ROOT / "tests" / "checks" / f"test_{logic}.py"
    assert test_file.is_file(), f"{test_file.relative_to(PROJECT_ROOT)} (its fixture test) is missing"
    text = test_file.read_text()
    assert re.search(rf"""["']{logic}["']""", text), f"{test_file.name} never names logic {logic!r}"
    for status in ("pass", "fail"):
        assert re.search(rf"""["']{status}["']""", text), f"{test_file.name} has no fixture that must {status}"
    assert f"sql/checks/{logic}.sql" in CONTROLS_DOC, \
        "docs/controls.md is stale: run python -m iam_audit_dev.docs"


GUIDE = PROJECT_ROOT / "docs" / "adding-a-control.md"


def test_every_path_and_module_the_guide_names_exists():
    """The guide's instructions point at real files and runnable modules, for any logic."""
    import importlib.util

    text = GUIDE.read_text()
    paths = set(re.findall(r"`((?:src|tests|docs)/[^`\s]+)`", text))
    assert paths, "the guide names no file"
    for path in paths:
        resolved = PROJECT_ROOT / path.replace("<logic>", LOGICS[0]).replace("<framework>", "cis_v7.0.0")
        assert resolved.exists(), f"docs/adding-a-control.md names {path}, which does not exist"
    modules = set(re.findall(r"python -m ([\w.]+)", text))
    assert modules, "the guide names no command"
    for module in modules:
        assert importlib.util.find_spec(module) is not None, f"docs/adding-a-control.md runs {module}, not importable"


def test_the_architecture_diagram_names_real_tasks():
    """Every task of the diagram in docs/architecture.md is a task of the DAG (patterns stand for the mapped
    and per-logic tasks), and the per-logic count is the catalogue's."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["aws_iam_cis"]
    diagram = (PROJECT_ROOT / "docs" / "architecture.md").read_text().split("```", 2)[1]
    named = set(re.findall(r"\b([a-z]+(?:_(?:[a-z]+|<logic>))+)", diagram))
    task_ids = set(dag.task_ids)
    for name in named:
        if name == "check_<logic>":
            assert {f"check_{logic}" for logic in LOGICS} <= task_ids
        else:
            assert name in task_ids, f"docs/architecture.md's diagram shows {name}, which is not a task of the DAG"
    if "check_<logic> ×" in diagram:
        assert f"check_<logic> ×{len(LOGICS)}" in diagram, "the diagram's check count is not the catalogue's"
