"""The control catalogue (sql/catalogue/): which check logic answers which control of which framework.

sql/catalogue/frameworks/<framework>.yaml: one file per framework version, its controls' numbers,
titles, profile levels, assessment status and params, and the logic evaluating each.
sql/catalogue/controls/<logic>.yaml: one file per check logic (sql/checks/<logic>.sql): texts,
severity, the data sets it needs and the JSON Schema of its params.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from iam_audit.paths import CATALOGUE_DIR, CHECKS_DIR, PACKAGE_DIR
from iam_audit.vocabulary import SEVERITIES, control_sort_key, framework_sort_key


@dataclass(frozen=True)
class FrameworkControl:
    framework: str
    check_id: str
    title: str
    level: str | None
    assessment: str
    logic: str | None
    severity: str
    params: dict = field(default_factory=dict)
    note: str = ""  # manual controls: why a person must assess it here


@dataclass(frozen=True)
class CheckLogic:
    logic: str
    severity: str
    needs: tuple[str, ...]
    summary: str
    rationale: str
    remediation: str
    controls: tuple[FrameworkControl, ...]
    audit: str = ""  # the benchmark's audit logic, in our words

    @property
    def title(self) -> str:
        """The control's title in the newest framework version that has it."""
        return max(self.controls, key=lambda c: framework_sort_key(c.framework)).title

    @property
    def sql_file(self) -> Path:
        return CHECKS_DIR / f"{self.logic}.sql"

    @property
    def frameworks(self) -> tuple[str, ...]:
        return tuple(c.framework for c in self.controls)

    def doc_md(self) -> str:
        """Markdown for the task docs (Airflow's narrow docs panel): what, why, audit, fix first, then
        the control's number in each framework version on one line, titles, levels and params only where
        versions differ."""
        parts = [
            f"### {self.title}\n",
            f"**Checks:** {self.summary}\n",
            f"**Why:** {self.rationale}\n",
        ]
        if self.audit:
            parts.append(f"**Audit:** {self.audit}\n")
        parts += [
            f"**Fix:** {self.remediation}\n",
            f"Severity **{self.severity}** · reads {', '.join(f'`{n}`' for n in self.needs)} · "
            f"logic `sql/checks/{self.logic}.sql`\n",
            "**Numbers:** " + _version_line(self.controls, lambda c: c.check_id
                                            + (" (manual)" if c.assessment == "manual" else "")) + "\n",
        ]
        titles = _grouped(self.controls, lambda c: c.title)
        if len(titles) > 1:
            parts.append("**Titles:** " + " · ".join(f"{versions}: {title}" for title, versions in titles) + "\n")
        levels = _grouped(self.controls, lambda c: c.level or "–")
        if levels != [("–", levels[0][1])]:
            parts.append("**Level:** " + (levels[0][0] if len(levels) == 1 else " · ".join(
                f"{versions} {level}" for level, versions in levels)) + "\n")
        params = _grouped(self.controls, lambda c: json.dumps(c.params, sort_keys=True) if c.params else "")
        if any(value for value, _ in params):
            parts.append("**Params:** " + (f"`{params[0][0]}`" if len(params) == 1 else " · ".join(
                f"{versions} `{value}`" if value else f"{versions} none" for value, versions in params)) + "\n")
        return "\n".join(parts)


def _short_version(framework: str) -> str:
    return framework.removeprefix("cis_")


def _version_line(controls: tuple[FrameworkControl, ...], label) -> str:
    """'CIS v1.2.0 1.12 · v1.3.0 1.4 · … · iam_hygiene IH.1': each framework family named once."""
    out, family = [], None
    for control in sorted(controls, key=lambda c: framework_sort_key(c.framework)):
        name = "CIS" if control.framework.startswith("cis_") else control.framework
        head = _short_version(control.framework) if name == "CIS" else ""
        if name != family:
            head = f"{name} {head}".strip()
        family = name
        out.append(f"{head} {label(control)}")
    return " · ".join(out)


def _grouped(controls: tuple[FrameworkControl, ...], key) -> list[tuple[str, str]]:
    """(value, versions) pairs: the versions sharing each key(control) value, as 'v1.4.0–v6.0.0' when
    consecutive, in version order of their first member."""
    ordered = sorted(controls, key=lambda c: framework_sort_key(c.framework))
    groups: dict[str, list[int]] = {}
    for i, control in enumerate(ordered):
        groups.setdefault(key(control), []).append(i)
    out = []
    for value, idx in groups.items():
        names = [_short_version(ordered[i].framework) for i in idx]
        consecutive = len(idx) > 2 and idx[-1] - idx[0] == len(idx) - 1
        out.append((value, f"{names[0]}–{names[-1]}" if consecutive else ", ".join(names)))
    return out


@dataclass(frozen=True)
class Catalogue:
    checks: tuple[CheckLogic, ...]
    manual: tuple[FrameworkControl, ...]

    @property
    def frameworks(self) -> tuple[str, ...]:
        names = {c.framework for check in self.checks for c in check.controls}
        names |= {c.framework for c in self.manual}
        return tuple(sorted(names, key=framework_sort_key))

    def all_controls(self) -> list[FrameworkControl]:
        rows = [c for check in self.checks for c in check.controls] + list(self.manual)
        return sorted(rows, key=lambda c: (framework_sort_key(c.framework), control_sort_key(c.check_id)))

    def check(self, logic: str) -> CheckLogic:
        for check in self.checks:
            if check.logic == logic:
                return check
        raise KeyError(f"no check logic {logic!r} in {CATALOGUE_DIR}/controls")


class CatalogueError(ValueError):
    pass


def _params_validator(logic: str, schema: dict | None, source: str) -> Draft202012Validator | None:
    """The JSON Schema every control of `logic` must meet with its params.

    Every property the schema declares is required and no other is allowed, so a
    version that forgets a param is a load error, never a NULL in the check's SQL.
    """
    if schema is None:
        return None
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise CatalogueError(f"{source}: {logic}: params_schema must be a JSON Schema of type object")
    full = {
        "type": "object",
        **schema,
        "required": sorted(schema.get("properties", {})),
        "additionalProperties": False,
    }
    try:
        Draft202012Validator.check_schema(full)
    except SchemaError as exc:
        raise CatalogueError(f"{source}: {logic}: params_schema is not a valid JSON Schema: {exc.message}") from None
    return Draft202012Validator(full)


def _check_params(validator: Draft202012Validator | None, params, logic: str, framework: str, check_id: str,
                  source: str) -> dict:
    where = f"{source}: {framework} control {check_id} ({logic})"
    if validator is None:
        if params:
            raise CatalogueError(f"{where}: has params {sorted(params)} but the logic declares no params_schema")
        return {}
    params = {} if params is None else params
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(
            (f"params.{'.'.join(str(p) for p in e.path)}: " if e.path else "params: ") + e.message for e in errors
        )
        raise CatalogueError(f"{where}: {details}")
    return params


FRAMEWORK_KEYS = {"framework": True, "name": False, "controls": True}
FRAMEWORK_CONTROL_KEYS = {"id": True, "title": True, "assessment": True, "level": False, "logic": False,
                          "params": False, "note": False, "severity": False, "evidence": False}
# kinds of organisation evidence sql/views/080_aws_policy_manual_evidence.sql produces for manual controls
EVIDENCE_KINDS = ("root_access_management", "guardrail_policies", "ou_structure",
                  "organizations_delegation_policy", "delegated_administrators")
LOGIC_KEYS = {"severity": True, "needs": True, "summary": True, "rationale": True, "remediation": True,
              "audit": False, "params_schema": False}
ASSESSMENTS = ("automated", "manual")


def _keys(mapping, allowed: dict[str, bool], where: str) -> None:
    """Unknown and missing keys, named with the file and entry they belong to."""
    if not isinstance(mapping, dict):
        raise CatalogueError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise CatalogueError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(allowed)})")
    missing = [key for key, required in allowed.items() if required and key not in mapping]
    if missing:
        raise CatalogueError(f"{where}: missing key {missing[0]!r}")


def parse_catalogue(data: dict, source: str = "sql/catalogue") -> Catalogue:
    """The catalogue from its files' contents.

    `data` is {"frameworks": {file: content}, "controls": {file: content}}: one framework file per
    framework version (its controls' numbers, titles, levels, assessment and params, and the logic
    evaluating each) and one control file per check logic (named <logic>.yaml: texts, severity,
    needs, params schema). Every error names the file and the key or control it is about.
    """
    logics: dict[str, tuple[str, dict]] = {}
    for file, entry in sorted((data.get("controls") or {}).items()):
        logic = Path(file).stem
        _keys(entry, LOGIC_KEYS, f"{file}")
        if entry["severity"] not in SEVERITIES:
            raise CatalogueError(f"{file}: severity: {entry['severity']!r} is not one of {SEVERITIES}")
        needs = entry["needs"]
        if not isinstance(needs, list) or not needs or not all(isinstance(n, str) for n in needs):
            raise CatalogueError(f"{file}: needs: must be a non-empty list of data set names")
        for key in ("summary", "rationale", "remediation", "audit"):
            if key in entry and not (isinstance(entry[key], str) and entry[key].strip()):
                raise CatalogueError(f"{file}: {key}: must be non-empty text")
        logics[logic] = (file, entry)
    validators = {logic: _params_validator(logic, entry.get("params_schema"), file)
                  for logic, (file, entry) in logics.items()}

    per_logic: dict[str, list[tuple[tuple, FrameworkControl]]] = {logic: [] for logic in logics}
    manual = []
    seen_frameworks: dict[str, str] = {}
    for file, content in (data.get("frameworks") or {}).items():
        _keys(content, FRAMEWORK_KEYS, file)
        framework = str(content["framework"])
        if Path(file).stem != framework:
            raise CatalogueError(f"{file}: framework: {framework!r} differs from the file name")
        if framework in seen_frameworks:
            raise CatalogueError(f"{file}: framework {framework} is also defined in {seen_frameworks[framework]}")
        seen_frameworks[framework] = file
        if not isinstance(content["controls"], list) or not content["controls"]:
            raise CatalogueError(f"{file}: controls: must be a non-empty list")
        seen: set[str] = set()
        for position, spec in enumerate(content["controls"]):
            where = f"{file}: controls[{position}]"
            _keys(spec, FRAMEWORK_CONTROL_KEYS, where)
            check_id = str(spec["id"])
            where = f"{file}: control {check_id}"
            if check_id in seen:
                raise CatalogueError(f"{where}: defined twice")
            seen.add(check_id)
            assessment = spec["assessment"]
            if assessment not in ASSESSMENTS:
                raise CatalogueError(f"{where}: assessment: {assessment!r} is not one of {ASSESSMENTS}")
            logic = spec.get("logic")
            if logic is None:
                if assessment != "manual":
                    raise CatalogueError(f"{where}: no logic, so it must be assessment: manual (a person assesses it)")
                if "params" in spec:
                    raise CatalogueError(f"{where}: params: only a control with a logic has params")
                severity = spec.get("severity", "low")
                if severity not in SEVERITIES:
                    raise CatalogueError(f"{where}: severity: {severity!r} is not one of {SEVERITIES}")
                evidence = spec.get("evidence", [])
                if not isinstance(evidence, list) or any(kind not in EVIDENCE_KINDS for kind in evidence):
                    raise CatalogueError(f"{where}: evidence: {evidence!r} must be a list of {EVIDENCE_KINDS}")
                manual.append(FrameworkControl(
                    framework=framework, check_id=check_id, title=spec["title"], level=spec.get("level"),
                    assessment="manual", logic=None, severity=severity, note=spec.get("note", ""),
                    # the evidence a person is shown (aws_policy_manual_evidence); never a verdict
                    params={"evidence": evidence} if evidence else {},
                ))
                continue
            if logic not in logics:
                raise CatalogueError(f"{where}: logic: {logic!r} has no control file {source}/controls/{logic}.yaml")
            for key in ("note", "severity", "evidence"):
                if key in spec:
                    raise CatalogueError(f"{where}: {key}: only a manual control without a logic has one "
                                         f"(the logic's file sets severity)")
            logic_entry = logics[logic][1]
            control = FrameworkControl(
                framework=framework, check_id=check_id, title=spec["title"], level=spec.get("level"),
                assessment=assessment, logic=logic, severity=logic_entry["severity"],
                params=_check_params(validators[logic], spec.get("params"), logic, framework, check_id, file),
            )
            per_logic[logic].append(((framework_sort_key(framework), control_sort_key(check_id)), control))

    checks = []
    for logic, (file, entry) in logics.items():
        if not per_logic[logic]:
            raise CatalogueError(f"{file}: no framework file maps a control to logic {logic!r}")
        ordered = sorted(per_logic[logic], key=lambda pair: pair[0])
        checks.append((ordered[0][0], CheckLogic(
            logic=logic,
            severity=entry["severity"],
            needs=tuple(entry["needs"]),
            summary=entry["summary"],
            rationale=entry["rationale"],
            remediation=entry["remediation"],
            controls=tuple(control for _, control in ordered),
            audit=entry.get("audit", ""),
        )))
    # check order (DAG tasks, docs): by the logic's first control in the oldest framework that has it
    checks.sort(key=lambda pair: (pair[0], pair[1].logic))
    return Catalogue(checks=tuple(check for _, check in checks), manual=tuple(manual))


def _yaml(path: Path):
    # libyaml's loader when PyYAML has it: the pure-Python one takes most of a DAG parse
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=loader)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path}: not valid YAML: {exc}") from None


def _label(path: Path, directory: Path) -> str:
    try:
        return str(path.relative_to(PACKAGE_DIR))
    except ValueError:
        return str(path.relative_to(directory.parent))


def read_catalogue_files(directory: Path = CATALOGUE_DIR) -> dict:
    """The contents of <directory>/frameworks/*.yaml and <directory>/controls/*.yaml, keyed by file."""
    return {
        kind: {_label(path, directory): _yaml(path) for path in sorted((directory / kind).glob("*.yaml"))}
        for kind in ("frameworks", "controls")
    }


@cache
def load_builtin_catalogue(directory: Path = CATALOGUE_DIR) -> Catalogue:
    """The package's own catalogue (or another directory of that shape), without the user's controls."""
    return parse_catalogue(read_catalogue_files(directory), source=_label(directory, directory))


def load_catalogue(directory: Path | None = None) -> Catalogue:
    """The catalogue the pipeline runs: the package's, merged with the accepted controls of the custom
    folder (iam_audit.custom: Variable iam_audit_custom_path) when one is set. `directory`: that
    directory's catalogue alone."""
    if directory is not None:
        return load_builtin_catalogue(directory)
    from iam_audit.custom import current

    return current().catalogue


def catalogue_rows(catalogue: Catalogue) -> list[tuple]:
    """Rows for aws_policy_controls."""
    return [
        (c.framework, c.check_id, c.logic, c.title, c.severity, c.level, c.assessment, json.dumps(c.params))
        for c in catalogue.all_controls()
    ]


def scaffold_version(new: str, source: str, directory: Path = CATALOGUE_DIR) -> Path:
    """frameworks/<new>.yaml as a copy of frameworks/<source>.yaml, to be checked line by line against
    the new benchmark text (numbers, titles, levels, statuses, thresholds)."""
    if framework_sort_key(new)[1] == () or not new.startswith("cis_v"):
        raise CatalogueError(f"{new!r} is not a versioned framework name such as cis_v8.0.0")
    origin = directory / "frameworks" / f"{source}.yaml"
    target = directory / "frameworks" / f"{new}.yaml"
    if not origin.is_file():
        raise CatalogueError(f"{origin}: no such framework file")
    if target.exists():
        raise CatalogueError(f"{target}: already exists")
    lines = origin.read_text(encoding="utf-8").splitlines(keepends=True)
    body = [line for line in lines if not line.startswith("#")]
    body = [f"framework: {new}\n" if line.startswith("framework:") else line for line in body]
    head = (f"# {new}: copied from {source}.yaml; check EVERY line against the benchmark text (numbers, titles,\n"
            f"# levels, assessment statuses, params), delete dropped controls, add new ones, then replace\n"
            f"# this comment with the sources checked. Format: sql/catalogue/README.md.\n")
    target.write_text(head + "".join(body), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m iam_audit.evaluate.catalogue",
                                     description="Validate the catalogue, or start a new framework version.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="load and validate every catalogue file")
    new = sub.add_parser("new", help="copy a framework version's file under a new version's name")
    new.add_argument("framework", help="the new version, e.g. cis_v8.0.0")
    new.add_argument("--from", dest="source", required=True, help="the version to copy, e.g. cis_v7.0.0")
    args = parser.parse_args(argv)
    try:
        if args.command == "new":
            print(f"wrote {scaffold_version(args.framework, args.source)}")
        else:
            catalogue = load_catalogue()
            print(f"{len(catalogue.frameworks)} frameworks, {len(catalogue.checks)} check logics, "
                  f"{len(catalogue.all_controls())} controls: valid")
    except CatalogueError as exc:
        print(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
