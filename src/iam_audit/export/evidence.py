"""An auditor's evidence pack for one stored snapshot date.

    evidence-YYYY-MM-DD[-<framework>]/
      controls.csv         every control of each framework version: number, title, level, automated or
                           manual, severity, the check logic, and its verdict counts on the date
      verdicts.csv         every verdict: framework, number, account, resource, status, the status after
                           exceptions (muted), reason, the exception that mutes it
      exceptions.csv       the exceptions in force on the date: scope, who, why, created, until
      manual_evidence.csv  the facts collected for controls a person must assess (when the database has
                           the aws_policy_manual_evidence view)
      summary.html         one printable page per framework version (a browser prints it to PDF)
      manifest.json        every raw S3 object the verdicts came from with its SHA-256 and size, each
                           account's snapshot manifest, the pipeline's version, and the SHA-256 of
                           every file above
    evidence-YYYY-MM-DD[-<framework>].zip   the same files, for keeping

Nothing in the pack depends on when it was built: exporting a date again gives byte-identical
CSV files, manifest and archive. The raw objects are read back and hashed before anything is
written: an object whose hash differs from the one its snapshot manifest recorded, a manifest without
hashes, or a missing object stops the export with an error naming it, never a pack that vouches for
evidence it could not check. A date with no verdicts is refused by name.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import zipfile
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

import jinja2

from iam_audit.evaluate.catalogue import control_sort_key, framework_sort_key
from iam_audit.export.ocsf import NothingToExport, _product_version, has_evaluations
from iam_audit.ingest import layout

FILES = ("controls.csv", "verdicts.csv", "exceptions.csv", "manual_evidence.csv", "summary.html")
FETCH_ROWS = 5000


class EvidenceIntegrityError(RuntimeError):
    """A raw object of the date does not match what its snapshot manifest recorded."""


def pack_name(snapshot_date: date, framework: str | None = None) -> str:
    return f"evidence-{snapshot_date}" + (f"-{framework}" if framework else "")


def evidence_key(prefix: str, snapshot_date: date, framework: str | None = None) -> str:
    return f"{prefix}/snapshot_date={snapshot_date}/exports/evidence/{pack_name(snapshot_date, framework)}.zip"


# ---- the raw objects ---------------------------------------------------------------------------------

def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def verify_raw_objects(conn, read: Callable[[str], bytes], prefix: str, snapshot_date: date,
                       url: Callable[[str], str] | None = None) -> dict:
    """Read every raw object of the date's evaluated accounts back and check it against its manifest.

    `read(key)` returns the object's bytes or raises LookupError when it does not exist. An account
    without a manifest is listed (its verdicts are account-level errors) unless its verdicts came
    from data, which then must be there. With `url(key)` (the object's s3:// URL), each manifest and
    the organisation list must also equal the SHA-256 the live load recorded in PostgreSQL
    (iam_audit_evidence_digests), which the writers of the bucket cannot change: a manifest rewritten
    together with its data is refused too.
    """
    from iam_audit.ingest.load import recorded_digests

    load_digests = recorded_digests(conn, snapshot_date) if url else {}

    def at_load(key: str, blob: bytes) -> bool | None:
        """True: equals the live load's digest; False: none was recorded; None: not asked."""
        if url is None:
            return None
        expected = load_digests.get(url(key))
        if expected is None:
            return False
        if expected != _sha256(blob):
            raise EvidenceIntegrityError(
                f"{url(key)} differs from the SHA-256 recorded at the live load ({expected}, read "
                f"{_sha256(blob)}): the evidence was rewritten after it was loaded")
        return True

    accounts = [(a, bool(with_data)) for a, with_data in conn.execute(
        "SELECT account_id, bool_or(error_reason IS NULL) FROM aws_policy_evaluations "
        "WHERE snapshot_date = %s GROUP BY account_id ORDER BY account_id", (snapshot_date,))]
    objects, manifests, without, org_hashes = [], [], [], set()
    for account_id, with_data in accounts:
        key = layout.manifest_key(prefix, snapshot_date, account_id)
        try:
            blob = read(key)
        except LookupError:
            if with_data:
                raise EvidenceIntegrityError(f"{key} is missing, yet account {account_id} has verdicts from "
                                             f"data on {snapshot_date}: the evidence cannot be checked") from None
            without.append(account_id)
            continue
        try:
            manifest = json.loads(blob)
        except ValueError:
            raise EvidenceIntegrityError(f"{key} is not valid JSON") from None
        if manifest.get("incomplete") or manifest.get("account_id") != account_id:
            raise EvidenceIntegrityError(f"{key} is not a complete manifest of account {account_id}")
        manifests.append({"key": key, "account_id": account_id, "sha256": _sha256(blob), "bytes": len(blob),
                          "run_id": manifest.get("run_id"), "extracted_at": manifest.get("extracted_at"),
                          "matches_live_load_digest": at_load(key, blob)})
        org_hashes.add((manifest.get("organization") or {}).get("sha256"))
        objects += _listed_objects(read, key, manifest, account_id)
    org_objects, org_manifest = _verify_organisation(read, prefix, snapshot_date)
    objects += org_objects
    if org_manifest:
        manifests.append(org_manifest)
    organisation = None
    org_key = layout.organization_key(prefix, snapshot_date)
    try:
        blob = read(org_key)
    except LookupError:
        blob = None
    if blob is not None:
        listed = {h for h in org_hashes if h}
        if listed and listed != {_sha256(blob)}:
            raise EvidenceIntegrityError(f"{org_key} does not match the SHA-256 its accounts' manifests record "
                                         f"({', '.join(sorted(listed))}; read {_sha256(blob)})")
        organisation = {"key": org_key, "sha256": _sha256(blob), "bytes": len(blob),
                        "recorded_in_manifests": bool(listed), "matches_live_load_digest": at_load(org_key, blob)}
    return {"objects": objects, "manifests": manifests, "organization_accounts": organisation,
            "accounts_without_snapshot": without}


def _listed_objects(read: Callable[[str], bytes], key: str, manifest: dict, account_id: str | None) -> list[dict]:
    """Every object a manifest lists, read back and matched to the SHA-256 it records there."""
    objects = []
    for dataset, entry in sorted(manifest.get("datasets", {}).items()):
        if "key" not in entry:
            continue
        recorded = entry.get("sha256")
        if not isinstance(recorded, str):
            raise EvidenceIntegrityError(f"{key} records no SHA-256 for {entry['key']} (a manifest of "
                                         "format 1): the object cannot be checked")
        try:
            data = read(entry["key"])
        except LookupError:
            raise EvidenceIntegrityError(f"{entry['key']} (listed in {key}) is missing") from None
        if _sha256(data) != recorded:
            raise EvidenceIntegrityError(
                f"{entry['key']} does not match its manifest {key}: recorded SHA-256 {recorded}, read "
                f"{_sha256(data)}; the object was changed after the run wrote it")
        objects.append({"key": entry["key"], "account_id": account_id, "dataset": dataset,
                        "sha256": recorded, "bytes": len(data)})
    return objects


def _verify_organisation(read: Callable[[str], bytes], prefix: str, snapshot_date: date) -> tuple[list, dict | None]:
    """The organisation data sets (OU tree, SCPs and RCPs, ...) against organization/_manifest.json;
    nothing when the date has no organisation snapshot (dates collected before it existed)."""
    from iam_audit.ingest import organization

    key = organization.manifest_key(prefix, snapshot_date)
    try:
        blob = read(key)
    except LookupError:
        return [], None
    try:
        manifest = json.loads(blob)
    except ValueError:
        raise EvidenceIntegrityError(f"{key} is not valid JSON") from None
    if manifest.get("incomplete"):
        raise EvidenceIntegrityError(f"{key} is an incomplete organisation manifest")
    objects = _listed_objects(read, key, manifest, None)
    return objects, {"key": key, "account_id": None, "sha256": _sha256(blob), "bytes": len(blob),
                     "run_id": manifest.get("run_id"), "extracted_at": manifest.get("collected_at")}


# ---- the CSV files -------------------------------------------------------------------------------------

def _csv_writer(handle):
    return csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


def _frameworks_filter(framework: str | None) -> tuple[str, list]:
    return ("AND framework = %s", [framework]) if framework else ("", [])


def write_controls(conn, out: Path, snapshot_date: date, framework: str | None) -> None:
    where, params = _frameworks_filter(framework)
    counts = {}
    for fw, cid, status, n in conn.execute(
            f"SELECT framework, check_id, effective_status, count(*) FROM aws_policy_results_effective "  # noqa: S608
            f"WHERE snapshot_date = %s {where} GROUP BY 1, 2, 3", [snapshot_date, *params]):
        counts.setdefault((fw, cid), {})[status] = n
    scoped = {fw for fw, _ in counts}
    rows = [r for r in conn.execute(
        f"SELECT framework, check_id, title, level, assessment, severity, logic FROM aws_policy_controls "  # noqa: S608
        f"WHERE true {where}", params) if r[0] in scoped or framework]
    rows.sort(key=lambda r: (framework_sort_key(r[0]), control_sort_key(r[1])))
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = _csv_writer(handle)
        writer.writerow(["framework", "check_id", "title", "level", "assessment", "severity", "control_logic",
                         "evaluated", "pass", "fail", "muted", "error"])
        for fw, cid, title, level, assessment, severity, logic in rows:
            c = counts.get((fw, cid), {})
            writer.writerow([fw, cid, title, level or "", assessment, severity, logic or "",
                             "yes" if c else "no (a person assesses it)" if assessment == "manual" else "no",
                             c.get("pass", 0), c.get("fail", 0), c.get("muted", 0), c.get("error", 0)])


def _stream(conn, sql: str, params) -> Iterable[tuple]:
    with conn.transaction(), conn.cursor(name="iam_audit_evidence") as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(sql, params)
        yield from cur


def write_verdicts(conn, out: Path, snapshot_date: date, framework: str | None) -> int:
    where, params = _frameworks_filter(framework)
    count = 0
    # COLLATE "C": the byte order of the keys, the same on every server whatever its locale
    sql = f"""SELECT r.framework, r.check_id, r.title, r.severity, r.account_id, a.account_name, r.resource_type,
                     r.resource_id, r.status, r.effective_status, r.reason, r.exception_id, r.control_logic
              FROM aws_policy_results_effective r
              LEFT JOIN iam_stage.accounts a ON a.snapshot_date = r.snapshot_date AND a.account_id = r.account_id
              WHERE r.snapshot_date = %s {where.replace('framework', 'r.framework')}
              ORDER BY r.framework COLLATE "C", r.check_id COLLATE "C", r.account_id COLLATE "C",
                       r.resource_id COLLATE "C" """  # noqa: S608
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = _csv_writer(handle)
        writer.writerow(["framework", "check_id", "title", "severity", "account_id", "account_name",
                         "resource_type", "resource_id", "status", "effective_status", "reason", "exception_id",
                         "control_logic"])
        for row in _stream(conn, sql, [snapshot_date, *params]):
            writer.writerow(["" if v is None else v for v in row])
            count += 1
    return count


def write_exceptions(conn, out: Path, snapshot_date: date, framework: str | None) -> None:
    """The exceptions in force on the date, by the rule aws_policy_matching_exception applies."""
    rows = conn.execute(
        """SELECT id, account_id, framework, check_id, resource_pattern, all_scope, reason, created_by,
                  (created_at AT TIME ZONE 'UTC')::date, expires_on
           FROM aws_policy_exceptions
           WHERE (created_at AT TIME ZONE 'UTC')::date <= %(d)s AND %(d)s <= expires_on
             AND (%(fw)s::text IS NULL OR framework IS NULL OR framework = %(fw)s)
           ORDER BY id""", {"d": snapshot_date, "fw": framework}).fetchall()
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = _csv_writer(handle)
        writer.writerow(["exception_id", "account_id", "framework", "check_id", "resource_pattern", "all_scope",
                         "reason", "created_by", "created_on", "expires_on"])
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])


def write_manual_evidence(conn, out: Path, snapshot_date: date, framework: str | None) -> bool:
    """The manual controls' collected facts, when the database has the view; False when it has not."""
    if conn.execute("SELECT to_regclass('aws_policy_manual_evidence')").fetchone()[0] is None:
        with open(out, "w", encoding="utf-8", newline="") as handle:
            _csv_writer(handle).writerow(["note"])
            _csv_writer(handle).writerow(["this database has no aws_policy_manual_evidence view: manual controls "
                                          "are listed in controls.csv for a person to assess"])
        return False
    cur = conn.execute("SELECT * FROM aws_policy_manual_evidence WHERE snapshot_date = %s", (snapshot_date,))
    names = [c.name for c in cur.description]
    rows = sorted(["" if v is None else str(v) for v in row] for row in cur.fetchall())
    if framework and "framework" in names:
        rows = [r for r in rows if r[names.index("framework")] == framework]
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = _csv_writer(handle)
        writer.writerow(names)
        writer.writerows(rows)
    return True


# ---- the printable summary -----------------------------------------------------------------------------

_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("iam_audit.export", "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined)


def write_summary(conn, out: Path, snapshot_date: date, framework: str | None, raw: dict) -> None:
    from iam_audit.reporting.summary import build_summary

    summary = build_summary(conn, snapshot_date)
    frameworks = [f for f in summary.frameworks if not framework or f["framework"] == framework]
    controls = {}
    for c in summary.controls:
        controls.setdefault(c["framework"], []).append(c)
    for rows in controls.values():
        rows.sort(key=lambda c: control_sort_key(c["check_id"]))
    html = _TEMPLATES.get_template("evidence_summary.html").render(
        snapshot_date=snapshot_date, frameworks=frameworks, controls=controls, raw=raw,
        version=_product_version())
    out.write_text(html, encoding="utf-8")


# ---- the pack --------------------------------------------------------------------------------------------

def build_pack(conn, read: Callable[[str], bytes], prefix: str, snapshot_date: date, out_dir: Path,
               framework: str | None = None, url: Callable[[str], str] | None = None) -> Path:
    """Write the pack's folder and its zip archive into out_dir; returns the archive's path.

    Built in a temporary folder beside the target and renamed at the end: a failure leaves no half pack.
    """
    if not has_evaluations(conn, snapshot_date):
        raise NothingToExport(f"no verdicts are stored for {snapshot_date}: there is nothing to vouch for")
    if framework and not conn.execute("SELECT 1 FROM aws_policy_controls WHERE framework = %s",
                                      (framework,)).fetchone():
        raise ValueError(f"framework {framework!r} is not in the catalogue")
    raw = verify_raw_objects(conn, read, prefix, snapshot_date, url)
    name = pack_name(snapshot_date, framework)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / f".{name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    write_controls(conn, work / "controls.csv", snapshot_date, framework)
    verdicts = write_verdicts(conn, work / "verdicts.csv", snapshot_date, framework)
    write_exceptions(conn, work / "exceptions.csv", snapshot_date, framework)
    write_manual_evidence(conn, work / "manual_evidence.csv", snapshot_date, framework)
    write_summary(conn, work / "summary.html", snapshot_date, framework, raw)
    manifest = {
        "pack": name, "snapshot_date": snapshot_date.isoformat(), "framework": framework,
        "pipeline": {"name": "iam-audit", "version": _product_version()},
        "verdicts": verdicts,
        "files": {f: {"sha256": _sha256((work / f).read_bytes()), "bytes": (work / f).stat().st_size}
                  for f in FILES},
        "raw": raw,
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    folder = out_dir / name
    shutil.rmtree(folder, ignore_errors=True)
    work.rename(folder)
    archive = out_dir / f"{name}.zip"
    archive.write_bytes(zip_folder(folder, name, snapshot_date))
    return archive


def zip_folder(folder: Path, name: str, snapshot_date: date) -> bytes:
    """A zip whose bytes depend only on the files: fixed order, timestamps and permissions."""
    buffer = io.BytesIO()
    stamp = (snapshot_date.year, snapshot_date.month, snapshot_date.day, 0, 0, 0)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            info = zipfile.ZipInfo(f"{name}/{path.name}", date_time=stamp)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as handle, archive.open(info, "w") as target:
                shutil.copyfileobj(handle, target)
    return buffer.getvalue()
