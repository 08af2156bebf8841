"""Checked at DAG parse: the package's SQL, catalogue and templates are all there and belong to the
installed version.

An Airflow that installed the package from a wheel (pip, an image, MWAA's plugins.zip, Composer)
has the wheel's RECORD: every file with its sha256. A file missing or changed since, a stray copy of
an older `iam_audit` earlier on sys.path (a plugins/ or dags/ folder), or package data whose VERSION
stamp differs from the distribution's metadata would otherwise surface mid-run as a failed check or,
worse, as verdicts of another version's SQL. Failing the DAG's import puts the reason on Airflow's
"DAG import errors" instead.

A source checkout installed editable has no RECORD of its files: only the layout is checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
from importlib import metadata
from pathlib import Path

from iam_audit.paths import (
    CATALOGUE_DIR,
    CHECKS_DIR,
    FUNCTIONS_DIR,
    MIGRATIONS_DIR,
    PACKAGE_DIR,
    SQL_DIR,
    VIEWS_DIR,
)

DISTRIBUTION = "iam-audit"
# Package data without which no run can succeed: the folder, and the pattern of files it must hold.
REQUIRED = (
    (MIGRATIONS_DIR, "*.sql"),
    (FUNCTIONS_DIR, "*.sql"),
    (VIEWS_DIR, "*.sql"),
    (CHECKS_DIR, "*.sql"),
    (CATALOGUE_DIR / "controls", "*.yaml"),
    (CATALOGUE_DIR / "frameworks", "*.yaml"),
)
REQUIRED_FILES = ("VERSION", "sql/macros/check.sql")
# Only package data is compared with RECORD: byte-compiled files and the RECORD of other tools differ
# legitimately.
DATA_PREFIXES = ("sql/", "policies/", "templates/", "web/static/", "web/templates/", "export/templates/", "VERSION")


class PackageIntegrityError(RuntimeError):
    """The installed iam-audit package is incomplete or mixes versions; the message lists every problem."""


def package_version(package_dir: Path = PACKAGE_DIR) -> str | None:
    """The VERSION stamp shipped beside the SQL (None when it is missing)."""
    try:
        return (package_dir / "VERSION").read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _is_editable(dist: metadata.Distribution) -> bool:
    try:
        direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return bool(direct_url.get("dir_info", {}).get("editable"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def problems(package_dir: Path = PACKAGE_DIR, dist: metadata.Distribution | None = None) -> list[str]:
    """Every problem found, in words an operator can act on; empty when the installation is whole."""
    found: list[str] = []
    for name in REQUIRED_FILES:
        if not (package_dir / name).is_file():
            found.append(f"missing {package_dir / name}")
    sql_dir = package_dir / SQL_DIR.relative_to(PACKAGE_DIR)
    for folder, pattern in REQUIRED:
        folder = package_dir / folder.relative_to(PACKAGE_DIR)
        if not folder.is_dir():
            found.append(f"missing folder {folder}")
        elif not any(folder.glob(pattern)):
            found.append(f"no {pattern} in {folder}")
    controls = package_dir / CATALOGUE_DIR.relative_to(PACKAGE_DIR) / "controls"
    for control in sorted(controls.glob("*.yaml")) if controls.is_dir() else ():
        if not (sql_dir / "checks" / f"{control.stem}.sql").is_file():
            found.append(f"catalogue entry {control} has no check SQL {sql_dir / 'checks' / (control.stem + '.sql')}")

    if dist is None:
        try:
            dist = metadata.distribution(DISTRIBUTION)
        except metadata.PackageNotFoundError:
            # Imported from a copied folder without metadata (a plugins/ or dags/ copy): the layout check
            # above is all that can be said.
            return found
    stamp = package_version(package_dir)
    if stamp is not None and stamp != dist.version:
        found.append(f"package data is from iam-audit {stamp} but the installed distribution is {dist.version} "
                     f"(files in {package_dir}); reinstall one version: pip install --force-reinstall "
                     f"iam-audit=={dist.version}")
    if _is_editable(dist) or not dist.files:
        return found
    installed_at = Path(str(dist.locate_file("iam_audit/__init__.py"))).resolve().parent
    if installed_at != package_dir.resolve():
        found.append(f"iam_audit is imported from {package_dir}, but pip installed iam-audit {dist.version} at "
                     f"{installed_at}: remove the other copy from sys.path (a plugins/ or dags/ folder?)")
        return found
    for record in dist.files:
        parts = record.parts
        if len(parts) < 2 or parts[0] != "iam_audit" or not "/".join(parts[1:]).startswith(DATA_PREFIXES):
            continue
        path = Path(str(dist.locate_file(record)))
        if not path.is_file():
            found.append(f"missing {path} (installed by iam-audit {dist.version})")
        elif record.hash is not None and _sha256(path) != f"{record.hash.mode}={record.hash.value}":
            found.append(f"changed since iam-audit {dist.version} installed it: {path}")
    return found


def verify_installation() -> None:
    """Raise PackageIntegrityError naming every missing or foreign file (called at DAG parse)."""
    found = problems()
    if found:
        raise PackageIntegrityError(
            f"the iam-audit package at {PACKAGE_DIR} cannot run the aws_iam_cis DAG:\n  - " + "\n  - ".join(found))
