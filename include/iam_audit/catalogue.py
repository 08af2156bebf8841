"""The control catalogue (sql/catalogue.yaml): which check logic answers which control of which framework."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from iam_audit.paths import CATALOGUE_FILE, CHECKS_DIR

SEVERITIES = ("critical", "high", "medium", "low")


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
        raise KeyError(f"no check logic {logic!r} in {CATALOGUE_FILE}")


def framework_sort_key(framework: str) -> tuple:
    """cis_v1.2.0 < cis_v1.10.0 < ... < iam_hygiene (unversioned names sort by name)."""
    name, sep, version = framework.rpartition("_v")
    if not sep:
        return (framework, ())
    return (name, tuple(int(p) for p in version.split(".") if p.isdigit()))


def control_sort_key(check_id: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in check_id.split("."))


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


def parse_catalogue(data: dict, source: str = "catalogue") -> Catalogue:
    checks = []
    seen: set[tuple[str, str]] = set()
    for entry in data.get("controls", []):
        logic = entry["logic"]
        severity = entry["severity"]
        if severity not in SEVERITIES:
            raise CatalogueError(f"{source}: {logic}: severity {severity!r} is not one of {SEVERITIES}")
        validator = _params_validator(logic, entry.get("params_schema"), source)
        controls = []
        for framework, spec in entry["frameworks"].items():
            key = (framework, str(spec["id"]))
            if key in seen:
                raise CatalogueError(f"{source}: {framework} control {spec['id']} is defined twice")
            seen.add(key)
            controls.append(
                FrameworkControl(
                    framework=framework,
                    check_id=str(spec["id"]),
                    title=spec["title"],
                    level=spec.get("level"),
                    assessment=spec.get("assessment", "automated"),
                    logic=logic,
                    severity=severity,
                    params=_check_params(validator, spec.get("params"), logic, framework, str(spec["id"]),
                                         source),
                )
            )
        checks.append(
            CheckLogic(
                logic=logic,
                severity=severity,
                needs=tuple(entry["needs"]),
                summary=entry["summary"],
                rationale=entry["rationale"],
                remediation=entry["remediation"],
                controls=tuple(controls),
                audit=entry.get("audit", ""),
            )
        )
    manual = []
    for framework, specs in (data.get("manual_controls") or {}).items():
        for spec in specs:
            key = (framework, str(spec["id"]))
            if key in seen:
                raise CatalogueError(f"{source}: {framework} control {spec['id']} is defined twice")
            seen.add(key)
            manual.append(
                FrameworkControl(
                    framework=framework,
                    check_id=str(spec["id"]),
                    title=spec["title"],
                    level=spec.get("level"),
                    assessment="manual",
                    logic=None,
                    severity=spec.get("severity", "low"),
                    note=spec.get("note", ""),
                )
            )
    return Catalogue(checks=tuple(checks), manual=tuple(manual))


@cache
def load_catalogue(path: Path = CATALOGUE_FILE) -> Catalogue:
    with open(path, encoding="utf-8") as handle:
        # libyaml's loader when PyYAML has it: the pure-Python one takes most of a DAG parse
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return parse_catalogue(yaml.load(handle, Loader=loader), source=str(path))


def catalogue_rows(catalogue: Catalogue) -> list[tuple]:
    """Rows for aws_policy_controls."""
    return [
        (c.framework, c.check_id, c.logic, c.title, c.severity, c.level, c.assessment, json.dumps(c.params))
        for c in catalogue.all_controls()
    ]
