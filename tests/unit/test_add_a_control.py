"""README's "Add a control": every control logic has its SQL file, catalogue entry, fixture test and docs."""

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


def test_the_readme_describes_the_four_parts():
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("## Add a control", 1)[1].split("\n## ", 1)[0]
    for part in ("src/iam_audit/sql/checks/<logic>.sql", "src/iam_audit/sql/catalogue/controls/<logic>.yaml",
                 "src/iam_audit/sql/catalogue/frameworks/",
                 "tests/checks/test_<logic>.py",
                 "python -m iam_audit_dev.docs", "tests/unit/test_add_a_control.py"):
        assert part in section


def test_the_readme_flow_diagram_counts_every_check():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert f"check_<logic> ×{len(LOGICS)} " in readme
    assert "publish_report" in readme.split("## How it works", 1)[1].split("```", 2)[1]
