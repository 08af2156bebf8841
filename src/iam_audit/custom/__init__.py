"""A user's own controls, kept in their own folder rather than in a fork of this package.

The folder is the one Variable iam_audit_custom_path names (also the alert rules' folder, <folder>/alerts):

    <folder>/checks/<logic>.sql                   one check per logic, written through macros/check.sql
    <folder>/catalogue/controls/<logic>.yaml      its texts, severity, needs and params_schema
    <folder>/catalogue/frameworks/<name>.yaml     frameworks of the user's choosing (e.g. org_policy)
    <folder>/fixtures/<name>.yaml                 staging rows and expected verdicts (python -m iam_audit.custom)
    <folder>/alerts/<rule>.sql                    alert rules (iam_audit.alerting.alerts)

The files have the built-in catalogue's format (sql/catalogue/README.md). Each control is validated
on its own when the DAG is parsed: one that is malformed is refused with its file and line and left
out, and every other control, the built-in ones first, is scheduled as usual (iam_audit.dag shows the
refusals as a failing task, custom_controls_refused).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from iam_audit.evaluate.catalogue import (
    FRAMEWORK_KEYS,
    Catalogue,
    CatalogueError,
    _keys,
    load_builtin_catalogue,
    parse_catalogue,
    read_catalogue_files,
)
from iam_audit.paths import CATALOGUE_DIR

log = logging.getLogger(__name__)

VAR_CUSTOM_PATH = "iam_audit_custom_path"
# Read before the Variable, so a DAG parse needs neither the metadata database nor a secrets backend.
ENV_CUSTOM_PATH = "IAM_AUDIT_CUSTOM_PATH"
CONFIG_SECTION, CONFIG_KEY = "iam_audit", "custom_path"  # [iam_audit] custom_path, AIRFLOW__IAM_AUDIT__CUSTOM_PATH
# a logic name becomes a task id (check_<logic>) and a string literal of the check macro
LOGIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def known_datasets() -> tuple[str, ...]:
    """The data sets a control may name in `needs`: the per-account IAM data sets, the organisation's,
    and the account tags (iam_audit_account_readiness knows each of them)."""
    from iam_audit.ingest.extract import DATASETS
    from iam_audit.ingest.organization import ORG_DATASETS

    return (*DATASETS, *ORG_DATASETS, "account_tags")


@dataclass(frozen=True)
class Refusal:
    """A custom control, framework entry or file left out, and why."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class CustomControls:
    folder: Path | None
    catalogue: Catalogue            # the built-in catalogue plus every accepted custom control
    logics: tuple[str, ...] = ()    # accepted custom check logics
    frameworks: tuple[str, ...] = ()  # frameworks defined in the folder (with at least one accepted control)
    refused: tuple[Refusal, ...] = field(default_factory=tuple)

    @property
    def checks_dir(self) -> Path | None:
        return self.folder / "checks" if self.folder else None

    def search_path(self) -> list[str]:
        """Jinja search path of the checks: the package's sql/ first (its macros/check.sql cannot be
        shadowed), then the folder, whose checks/<logic>.sql names never collide with a built-in one."""
        from iam_audit.paths import SQL_DIR

        return [str(SQL_DIR)] + ([str(self.folder)] if self.folder else [])


# ---- which folder ------------------------------------------------------------------------------------

_configured: dict[str, str | None] = {}


def resolve_path(*, use_variable: bool = True) -> str | None:
    """The custom folder: environment variable IAM_AUDIT_CUSTOM_PATH, else Airflow option
    [iam_audit] custom_path, else Variable iam_audit_custom_path (AIRFLOW_VAR_IAM_AUDIT_CUSTOM_PATH
    answers from the environment; otherwise it is a metadata database or secrets backend lookup)."""
    value = os.environ.get(ENV_CUSTOM_PATH)
    if value is None and "airflow.configuration" in __import__("sys").modules:
        from airflow.configuration import conf

        value = conf.get(CONFIG_SECTION, CONFIG_KEY, fallback=None)
    if value is None:
        value = os.environ.get("AIRFLOW_VAR_" + VAR_CUSTOM_PATH.upper())
    if value is None and use_variable:
        try:
            from airflow.sdk import Variable

            value = Variable.get(VAR_CUSTOM_PATH, default=None)
        except Exception as exc:  # noqa: BLE001 - no metadata database here: only the built-in controls
            log.warning("Variable %s could not be read (%s): no custom controls", VAR_CUSTOM_PATH, exc)
    return (value or "").strip() or None


def configure(path: str | None) -> None:
    """Fix the folder for this process (the DAG module does, once per parse): every later
    load_catalogue() in the process, its tasks' included, sees the same controls."""
    _configured["path"] = path


def current_path() -> str | None:
    return _configured["path"] if "path" in _configured else resolve_path(use_variable=False)


def current() -> CustomControls:
    return load_custom(current_path())


# ---- reading --------------------------------------------------------------------------------------------

class LineDict(dict):
    """A YAML mapping that remembers the line of itself and of each of its keys."""

    line: int = 1
    key_lines: dict

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    pass


def _construct_map(loader, node):
    loader.flatten_mapping(node)
    data = LineDict()
    data.line, data.key_lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = key_node.start_mark.line + 1
    return data


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)


def read_yaml(path: Path):
    """The file's content with line numbers; YAML errors become a Refusal."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise RefusedFile(Refusal(str(path), mark.line + 1 if mark else 1, f"not valid YAML: {problem}")) from None
    except OSError as exc:
        raise RefusedFile(Refusal(str(path), 1, f"cannot be read: {exc}")) from None


class RefusedFile(Exception):
    def __init__(self, refusal: Refusal):
        super().__init__(str(refusal))
        self.refusal = refusal


def _line_for(message: str, mapping) -> int:
    """The line of the key a catalogue error names, else of the mapping itself."""
    if not isinstance(mapping, LineDict):
        return 1
    for key in mapping:
        if f": {key}:" in message or f"'{key}'" in message or f" {key} " in message:
            return mapping.line_of(key)
    return mapping.line


def _strip(message: str, label: str) -> str:
    return message.removeprefix(f"{label}: ")


@cache
def _builtin_files() -> dict:
    return read_catalogue_files(CATALOGUE_DIR)


def load_custom(path: str | None) -> CustomControls:
    """The built-in catalogue merged with the folder's accepted controls, and the refusals."""
    if not path:
        return CustomControls(folder=None, catalogue=load_builtin_catalogue())
    folder = Path(path).expanduser().resolve()
    return _load_custom(str(folder), _signature(folder))


def _signature(folder: Path) -> tuple:
    """Names, sizes and modification times of the folder's control files: an edited folder is read
    again by a long-lived process (a DAG processor that re-parses), an unchanged one is not."""
    files = [p for kind in ("checks", "catalogue") for p in sorted((folder / kind).rglob("*")) if p.is_file()]
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


@cache
def _load_custom(folder_name: str, signature: tuple = ()) -> CustomControls:
    folder = Path(folder_name)
    builtin = load_builtin_catalogue()
    refused: list[Refusal] = []
    if not folder.is_dir():
        refused.append(Refusal(str(folder), 0, "the custom controls folder does not exist"))
        return CustomControls(folder=None, catalogue=builtin, refused=tuple(refused))
    builtin_files = _builtin_files()
    builtin_logics = {check.logic: check for check in builtin.checks}
    builtin_entries = {Path(label).stem: (label, entry) for label, entry in builtin_files["controls"].items()}
    datasets = known_datasets()

    # 1. control files: one logic each
    candidates: dict[str, tuple[str, LineDict]] = {}
    for path in sorted((folder / "catalogue" / "controls").glob("*.yaml")):
        label, logic = str(path), path.stem
        try:
            entry = read_yaml(path)
        except RefusedFile as exc:
            refused.append(exc.refusal)
            continue
        if not LOGIC_NAME.match(logic):
            refused.append(Refusal(label, 1, f"logic name {logic!r} must be lower-case letters, digits and "
                                             "underscores, starting with a letter (it names the task check_<logic>)"))
            continue
        if logic in builtin_logics:
            refused.append(Refusal(label, 1, f"logic {logic!r} duplicates a built-in logic "
                                             f"(sql/checks/{logic}.sql); give the custom control its own name"))
            continue
        try:
            parse_catalogue({"controls": {label: entry}, "frameworks": {}}, source=str(folder / "catalogue"))
        except CatalogueError as exc:
            if "no framework file maps" not in str(exc):
                refused.append(Refusal(label, _line_for(str(exc), entry), _strip(str(exc), label)))
                continue
        unknown = [n for n in entry["needs"] if n not in datasets]
        if unknown:
            refused.append(Refusal(label, entry.line_of("needs"),
                                   f"needs: unknown data set {unknown[0]!r} (known: {', '.join(datasets)})"))
            continue
        candidates[logic] = (label, entry)

    # 2. their SQL
    from iam_audit.custom.sql import validate_check_file

    for sql_path in sorted((folder / "checks").glob("*.sql")):
        entry_file = folder / "catalogue" / "controls" / f"{sql_path.stem}.yaml"
        if sql_path.stem not in candidates and not entry_file.exists():
            refused.append(Refusal(str(sql_path), 1, f"no catalogue entry catalogue/controls/{sql_path.stem}.yaml "
                                                     "for this check"))
    for logic, (_label, entry) in list(candidates.items()):
        sql_path = folder / "checks" / f"{logic}.sql"
        problems = validate_check_file(sql_path, logic, tuple(entry["needs"]))
        if problems:
            refused.extend(problems)
            del candidates[logic]

    # 3. framework files: each control entry on its own
    accepted_frameworks: dict[str, dict] = {}
    mapped: set[str] = set()
    builtin_frameworks = set(builtin.frameworks)
    for path in sorted((folder / "catalogue" / "frameworks").glob("*.yaml")):
        label = str(path)
        try:
            content = read_yaml(path)
            _keys(content, FRAMEWORK_KEYS, label)
        except RefusedFile as exc:
            refused.append(exc.refusal)
            continue
        except CatalogueError as exc:
            refused.append(Refusal(label, _line_for(str(exc), content), _strip(str(exc), label)))
            continue
        framework = str(content["framework"])
        if framework != path.stem:
            refused.append(Refusal(label, content.line_of("framework"),
                                   f"framework: {framework!r} differs from the file name"))
            continue
        if framework in builtin_frameworks:
            refused.append(Refusal(label, content.line_of("framework"),
                                   f"framework {framework!r} is built in; name your own framework (e.g. org_policy)"))
            continue
        specs = content["controls"]
        if not isinstance(specs, list) or not specs:
            refused.append(Refusal(label, content.line_of("controls"), "controls: must be a non-empty list"))
            continue
        kept, seen = [], set()
        for spec in specs:
            line = spec.line if isinstance(spec, LineDict) else content.line_of("controls")
            logic = spec.get("logic") if isinstance(spec, dict) else None
            if isinstance(spec, dict) and str(spec.get("id")) in seen:
                refused.append(Refusal(label, line, f"control {spec.get('id')}: defined twice"))
                continue
            if logic is not None and logic not in candidates and logic not in builtin_entries:
                reason = ("was refused (see its own message)"
                          if (folder / "catalogue" / "controls" / f"{logic}.yaml").exists()
                          else "has no control file catalogue/controls/<logic>.yaml here nor a built-in one")
                refused.append(Refusal(label, line, f"control {spec.get('id')}: logic {logic!r} {reason}"))
                continue
            controls = {}
            if logic in candidates:
                controls = {candidates[logic][0]: candidates[logic][1]}
            elif logic is not None:
                controls = {builtin_entries[logic][0]: builtin_entries[logic][1]}
            try:
                parse_catalogue({"controls": controls,
                                 "frameworks": {label: {"framework": framework, "controls": [spec]}}},
                                source=str(folder / "catalogue"))
            except CatalogueError as exc:
                refused.append(Refusal(label, _line_for(str(exc), spec) if isinstance(spec, dict) else line,
                                       _strip(str(exc), label)))
                continue
            seen.add(str(spec["id"]))
            kept.append(spec)
            if logic:
                mapped.add(logic)
        if kept:
            accepted_frameworks[label] = {"framework": framework, "controls": kept}

    for logic, (label, _entry) in list(candidates.items()):
        if logic not in mapped:
            refused.append(Refusal(label, 1, f"no accepted control of a framework file in {folder}/catalogue/"
                                             f"frameworks maps to logic {logic!r}, so it would never run"))
            del candidates[logic]

    # 4. the merge
    data = {"controls": {**builtin_files["controls"], **{label: entry for label, entry in candidates.values()}},
            "frameworks": {**builtin_files["frameworks"], **accepted_frameworks}}
    try:
        catalogue = parse_catalogue(data, source="sql/catalogue")
    except CatalogueError as exc:  # each piece passed alone: a conflict between them, e.g. a shared check id
        refused.append(Refusal(str(folder / "catalogue"), 1, f"the custom catalogue was left out: {exc}"))
        return CustomControls(folder=None, catalogue=builtin, refused=tuple(refused))
    frameworks = tuple(sorted({spec["framework"] for spec in accepted_frameworks.values()}))
    return CustomControls(folder=folder, catalogue=catalogue, logics=tuple(sorted(candidates)),
                          frameworks=frameworks, refused=tuple(refused))


def refusal_text(controls: CustomControls) -> str:
    return (f"{len(controls.refused)} custom control problem(s); these were not scheduled, every other control "
            "was:\n" + "\n".join(f"  {r}" for r in controls.refused))


def doc_note(controls: CustomControls) -> str:
    """Markdown for the DAG's docs: the folder, its accepted controls and frameworks, its refusals."""
    if controls.folder is None and not controls.refused:
        return ""
    parts = ["\n\n#### Custom controls\n"]
    if controls.folder is not None:
        parts.append(f"Folder `{controls.folder}`: logics {', '.join(f'`{x}`' for x in controls.logics) or 'none'}; "
                     f"frameworks {', '.join(f'`{x}`' for x in controls.frameworks) or 'none'}.\n")
    if controls.refused:
        parts.append("\n**Refused** (not scheduled; task `custom_controls_refused` fails with these):\n")
        parts += [f"\n- `{r.file}:{r.line}`: {r.message}" for r in controls.refused]
        parts.append("\n")
    return "".join(parts)
