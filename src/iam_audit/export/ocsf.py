"""Every verdict of a snapshot date as OCSF 1.6.0 Compliance Findings, JSON Lines, gzip.

Why Compliance Finding (class 2003) and 1.6.0: OCSF defines it for "results of evaluations performed
against resources, to check compliance with ... CIS AWS Foundations Benchmark", which is exactly a
verdict here; Detection Finding (2004) describes detections of activity. AWS Security Hub reads and
writes findings in OCSF 1.6, and Security Lake stores OCSF: 1.6.0 is what both read today.

One finding per (control logic, account, resource): frameworks that share the logic are one
finding whose `compliance.checks` carries each framework's number, title, status and reason (params
such as 45 or 90 days may give frameworks different verdicts), never one copy per framework.

    status (finding)         fail -> New, fail muted by an exception in every framework that fails
                             -> Suppressed, pass -> Resolved, error (data missing or malformed) -> Other
    compliance.status_id     the worst of the checks: Fail, then Other ("Error"), then Pass
    activity_id              Create when the resource was first seen on the date, else Update
    time                     when the run evaluated the account (deterministic for a stored date)
    start_time               first day of the unbroken failing streak (fails only)
    finding_info.uid         stable per (control logic, account, resource) across dates and reruns

The output is deterministic: the same history gives the same bytes (gzip without a timestamp,
sorted keys, rows ordered by the finding's key), so re-exporting a date never differs.
Rows are read through a server-side cursor and written to a temporary file, so memory stays flat
whatever the number of findings.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import json
import logging
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from importlib import metadata
from pathlib import Path
from typing import IO

from iam_audit.evaluate.catalogue import framework_sort_key as _framework_sort_key
from iam_audit.evaluate.catalogue import load_catalogue
from iam_audit.paths import SQL_DIR

log = logging.getLogger(__name__)

OCSF_VERSION = "1.6.0"
COMPLIANCE_FINDING = 2003
FINDINGS_CATEGORY = 2
PRODUCT_NAME = "iam-audit"
EXPORT_NAME = "findings.ocsf.jsonl.gz"
QUERY_FILE = SQL_DIR / "exports" / "ocsf_findings.sql"
SCOPES_FILE = SQL_DIR / "exports" / "ocsf_scopes.sql"

SEVERITY_ID = {"low": 2, "medium": 3, "high": 4, "critical": 5}
COMPLIANCE_STATUS = {"pass": (1, "Pass"), "fail": (3, "Fail"), "error": (99, "Error")}
# worst first: a failing framework decides the finding, then one that could not be evaluated
STATUS_ORDER = ("fail", "error", "pass")
ACTIVITY_CREATE, ACTIVITY_UPDATE = 1, 2
FINDING_NEW, FINDING_SUPPRESSED, FINDING_RESOLVED, FINDING_OTHER = 1, 3, 4, 99
AWS_ACCOUNT = 10
FETCH_ROWS = 2000


# a handful of framework names, sorted for every finding: computed once each
framework_sort_key = functools.lru_cache(maxsize=256)(_framework_sort_key)


def export_key(prefix: str, snapshot_date: date | str) -> str:
    """Next to the snapshot, outside every account_id= folder (replay never reads it)."""
    return f"{prefix}/snapshot_date={snapshot_date}/exports/ocsf/{EXPORT_NAME}"


@functools.lru_cache(maxsize=256)
def standard_name(framework: str) -> str:
    """The standard's name as Security Hub and auditors write it."""
    if framework.startswith("cis_v"):
        return f"CIS AWS Foundations Benchmark {framework.removeprefix('cis_')}"
    return framework


def _version(framework: str) -> str | None:
    return framework.removeprefix("cis_v") if framework.startswith("cis_v") else None


@functools.lru_cache(maxsize=4096)  # evaluation times and dates repeat across an account's findings
def _epoch_ms(value: datetime | date) -> int:
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0), tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _partition(resource_id: str) -> str:
    """aws, aws-cn or aws-us-gov, from the resource's ARN (account-level resources: aws)."""
    parts = resource_id.split(":")
    return parts[1] if len(parts) > 2 and parts[0] == "arn" and parts[1] else "aws"


def finding_uid(control_logic: str, account_id: str, resource_id: str) -> str:
    return f"{PRODUCT_NAME}/{control_logic}/{account_id}/{resource_id}"


@dataclass(frozen=True)
class LogicTexts:
    title: str
    summary: str
    remediation: str


def logic_texts() -> dict[str, LogicTexts]:
    """Remediation and summary per control logic, from the catalogue the checks ran with."""
    return {c.logic: LogicTexts(c.title, c.summary, c.remediation) for c in load_catalogue().checks}


def _product_version() -> str:
    try:
        return metadata.version(PRODUCT_NAME)
    except metadata.PackageNotFoundError:
        return "source"


def to_ocsf(row: dict, snapshot_date: date, texts: dict[str, LogicTexts], product_version: str) -> dict:
    """One OCSF Compliance Finding from one row of sql/exports/ocsf_findings.sql."""
    checks = sorted(row["checks"], key=lambda c: (framework_sort_key(c["framework"]), c["check_id"]))
    worst = min(checks, key=lambda c: STATUS_ORDER.index(c["status"]))
    status = worst["status"]
    severity = max(checks, key=lambda c: SEVERITY_ID[c["severity"]])["severity"]
    failing = [c for c in checks if c["status"] == "fail"]
    muted = bool(failing) and all(c["exception_id"] is not None for c in failing)
    if status == "fail":
        finding_status = (FINDING_SUPPRESSED, "Suppressed") if muted else (FINDING_NEW, "New")
    elif status == "pass":
        finding_status = (FINDING_RESOLVED, "Resolved")
    else:
        finding_status = (FINDING_OTHER, "Error")
    logic = row["control_logic"]
    text = texts.get(logic)
    newest = checks[-1]                    # sorted by framework version: the newest one's title
    first_seen = row["first_seen"] or snapshot_date
    activity = ACTIVITY_CREATE if first_seen >= snapshot_date else ACTIVITY_UPDATE
    uid = finding_uid(logic, row["account_id"], row["resource_id"])
    account = {"uid": row["account_id"], "type_id": AWS_ACCOUNT, "type": "AWS Account"}
    if row["account_name"]:
        account["name"] = row["account_name"]
    evaluated = _epoch_ms(row["evaluated_at"])
    compliance_status = COMPLIANCE_STATUS[status]
    finding = {
        "activity_id": activity,
        "activity_name": "Create" if activity == ACTIVITY_CREATE else "Update",
        "category_uid": FINDINGS_CATEGORY,
        "category_name": "Findings",
        "class_uid": COMPLIANCE_FINDING,
        "class_name": "Compliance Finding",
        "type_uid": COMPLIANCE_FINDING * 100 + activity,
        "time": evaluated,
        "severity_id": SEVERITY_ID[severity],
        "severity": severity.capitalize(),
        "status_id": finding_status[0],
        "status": finding_status[1],
        "status_detail": worst["reason"],
        "message": f"{newest['title']}: {worst['reason']}",
        "metadata": {
            "version": OCSF_VERSION,
            "profiles": ["cloud"],
            "uid": hashlib.sha256(f"{uid}@{snapshot_date}".encode()).hexdigest(),
            "event_code": logic,
            "product": {"name": PRODUCT_NAME, "vendor_name": PRODUCT_NAME, "version": product_version},
        },
        "cloud": {"provider": "AWS", "account": account},
        "finding_info": {
            "uid": uid,
            "title": newest["title"],
            "desc": text.summary if text else newest["title"],
            "types": ["Software and Configuration Checks/Industry and Regulatory Standards"],
            "first_seen_time": _epoch_ms(first_seen),
            "last_seen_time": evaluated,
        },
        "compliance": {
            "control": newest["title"],
            "standards": list(dict.fromkeys(standard_name(c["framework"]) for c in checks)),
            "requirements": [f"{standard_name(c['framework'])} {c['check_id']}" for c in checks],
            "status_id": compliance_status[0],
            "status": compliance_status[1],
            "status_detail": worst["reason"],
            "checks": [_check(c) for c in checks],
        },
        "resources": [{
            "uid": row["resource_id"],
            "type": row["resource_type"] or "unknown",
            "cloud_partition": _partition(row["resource_id"]),
            "owner": {"account": account},
        }],
        "unmapped": {"snapshot_date": snapshot_date.isoformat(), "run_id": row["run_id"],
                     "control_logic": logic},
    }
    if text:
        finding["remediation"] = {"desc": text.remediation}
    if status == "fail" and row["failing_since"]:
        finding["start_time"] = _epoch_ms(row["failing_since"])
    exceptions = [c for c in failing if c["exception_id"] is not None]
    if exceptions:
        finding["unmapped"]["exceptions"] = [
            {"framework": c["framework"], "check_id": c["check_id"], "id": c["exception_id"],
             "reason": c["exception_reason"], "expires_on": c["exception_expires_on"]} for c in exceptions]
    return finding


def _check(c: dict) -> dict:
    status_id, status = COMPLIANCE_STATUS[c["status"]]
    return {**_check_base(c["framework"], c["check_id"], c["title"], c["severity"]),
            "status_id": status_id, "status": status, "desc": c["reason"]}


@functools.lru_cache(maxsize=4096)
def _check_base(framework: str, check_id: str, title: str, severity: str) -> dict:
    """The part of a compliance check that is the same for every resource (never mutated by callers)."""
    out = {"uid": f"{framework}/{check_id}", "name": title, "standards": [standard_name(framework)],
           "severity_id": SEVERITY_ID[severity], "severity": severity.capitalize()}
    version = _version(framework)
    if version:
        out["version"] = version
    return out


def finding_rows(conn, snapshot_date: date) -> Iterator[dict]:
    """One dict per (control logic, account, resource) of the date, with `checks`: one entry per framework
    control that answered it (framework, check_id, title, severity, status, reason, exception_*).

    Rows of sql/exports/ocsf_findings.sql come through a server-side cursor (FETCH_ROWS at a time) and
    are joined in Python to the day's few scopes (sql/exports/ocsf_scopes.sql)."""
    params = {"snapshot_date": snapshot_date}
    scopes: dict[int, list[tuple]] = {}
    for variant_id, framework, check_id, title, severity in conn.execute(SCOPES_FILE.read_text(encoding="utf-8"),
                                                                          params):
        scopes.setdefault(variant_id, []).append((framework, check_id, title, severity))
    sql = QUERY_FILE.read_text(encoding="utf-8")
    with conn.transaction(), conn.cursor(name="iam_audit_finding_export") as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(sql, params)
        names = None
        for record in cur:
            if names is None:
                names = [c.name for c in cur.description]
            row = dict(zip(names, record, strict=True))
            checks = []
            for variant_id, status, reason, muted in row.pop("variants"):
                exceptions = {(m[0], m[1]): m[2:] for m in muted or ()}
                for framework, check_id, title, severity in scopes.get(variant_id, ()):
                    exception = exceptions.get((framework, check_id), (None, None, None))
                    checks.append({"framework": framework, "check_id": check_id, "title": title,
                                   "severity": severity, "status": status, "reason": reason,
                                   "exception_id": exception[0], "exception_reason": exception[1],
                                   "exception_expires_on": exception[2]})
            if checks:
                row["checks"] = checks
                yield row


def has_evaluations(conn, snapshot_date: date) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM aws_policy_evaluations WHERE snapshot_date = %s)",
                       (snapshot_date,)).fetchone()
    return bool(row[0])


class NothingToExport(LookupError):
    pass


def findings(conn, snapshot_date: date) -> Iterator[dict]:
    """Every OCSF finding of the date; NothingToExport when the date was never evaluated."""
    if not has_evaluations(conn, snapshot_date):
        raise NothingToExport(f"no verdicts are stored for {snapshot_date}: evaluate the date first "
                              "(a run or a backfill of it)")
    texts, version = logic_texts(), _product_version()
    for row in finding_rows(conn, snapshot_date):
        yield to_ocsf(row, snapshot_date, texts, version)


def write_jsonl_gz(items: Iterable[dict], out: IO[bytes]) -> int:
    """JSON Lines, gzip without a timestamp: identical items give identical bytes."""
    count = 0
    with gzip.GzipFile(filename="", fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
        for item in items:
            line = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
            gz.write(line.encode("utf-8") + b"\n")
            count += 1
    return count


def export_to_file(conn, snapshot_date: date, path: Path) -> int:
    """Write the date's findings to `path` (written beside it, then renamed: never half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as out:
        count = write_jsonl_gz(findings(conn, snapshot_date), out)
    tmp.replace(path)
    return count


def export_to_s3(conn, snapshot_date: date, store, prefix: str) -> tuple[str, int]:
    """Write the date's findings to S3 next to the snapshot; returns (s3 URL, finding count).

    Built in a temporary file first, so a failed query or write leaves any earlier export in place.
    """
    key = export_key(prefix, snapshot_date)
    with tempfile.TemporaryFile() as tmp:
        count = write_jsonl_gz(findings(conn, snapshot_date), tmp)
        tmp.seek(0)
        # application/gzip, not Content-Encoding: gzip (clients would unpack a file named .gz)
        store.put(key, tmp.read(), content_type="application/gzip")
    return store.url(key), count


def main(argv: list[str] | None = None) -> int:
    """python -m iam_audit.export.ocsf --date YYYY-MM-DD [--out FILE | --s3]"""
    parser = argparse.ArgumentParser(prog="python -m iam_audit.export.ocsf", description=main.__doc__)
    parser.add_argument("--date", required=True, type=date.fromisoformat, help="snapshot date YYYY-MM-DD")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="write the JSON Lines gzip file here")
    target.add_argument("--stdout", action="store_true", help="write JSON Lines (not gzipped) to stdout")
    parser.add_argument("--postgres-conn-id", default="postgres_default")
    args = parser.parse_args(argv)
    from iam_audit.database import pipeline_hook

    conn = pipeline_hook(args.postgres_conn_id).get_conn()
    try:
        if args.stdout:
            for item in findings(conn, args.date):
                sys.stdout.write(json.dumps(item, sort_keys=True, default=str) + "\n")
            return 0
        count = export_to_file(conn, args.date, args.out)
    except NothingToExport as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    print(f"{count} OCSF findings of {args.date} written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
