"""Changed findings to AWS Security Hub (BatchImportFindings, ASFF), off unless a region is set.

Variable iam_audit_securityhub_region names the region of the pipeline's own account (the account of
the aws_default credentials) whose Security Hub receives the findings. With the default product,
AWS accepts a finding only from the account it names in AwsAccountId, so every finding names the
receiving account there; the audited account is in the resource's ARN and in
ProductFields "iam-audit/AccountId". One Security Hub finding per (control logic, account,
resource), whatever the number of frameworks: Id = the OCSF export's finding uid, so reruns, retries
and two runs of a date update the same finding and never create a second one.

Only changes are sent, against a ledger of what Security Hub last accepted
(aws_policy_securityhub_findings):
    fail   -> Compliance.Status FAILED, RecordState ACTIVE         (new, or changed)
    error  -> NOT_AVAILABLE, ACTIVE                                 (data missing or malformed)
    pass   -> PASSED, ARCHIVED        only for a finding sent before (resolved); passing findings
                                      never sent stay unsent
    gone   -> NOT_AVAILABLE, ARCHIVED for a sent, active finding whose resource is absent from a
                                      complete evaluation of its logic in its account (e.g. a deleted
                                      user); absent because the account could not be evaluated is not gone
A muted fail stays FAILED: exceptions belong to this pipeline, and Security Hub's own workflow
(SUPPRESSED) is the receiving team's to set (BatchImportFindings cannot change Workflow after creation).

Batches of at most 100 findings (the API's limit), at most MAX_CONCURRENT_BATCHES in flight; throttling
is retried by botocore's adaptive retry mode (iam_audit.aws.client_config), which also rate-limits the
client. The ledger is updated only for findings Security Hub accepted, batch by batch, so a failed
batch, a FailedFindings entry or a crash leaves exactly those unsent and the next run sends them.
Replays of a date older than the newest date already sent send nothing: Security Hub holds the
current state, and an old date would turn it back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from botocore.exceptions import ClientError

from iam_audit.aws import error_code
from iam_audit.export.ocsf import (
    STATUS_ORDER,
    LogicTexts,
    finding_rows,
    finding_uid,
    framework_sort_key,
    logic_texts,
    standard_name,
)
from iam_audit.vocabulary import severity_rank

log = logging.getLogger(__name__)

BATCH_SIZE = 100                 # BatchImportFindings: 1 to 100 findings per request
MAX_CONCURRENT_BATCHES = 3       # AWS: 10 requests per second, burst 30; over it LimitExceededException
SCHEMA_VERSION = "2018-10-08"
STATUS = {"fail": "FAILED", "error": "NOT_AVAILABLE", "pass": "PASSED"}
RESOURCE_TYPES = {"iam_user": "AwsIamUser", "iam_role": "AwsIamRole", "iam_policy": "AwsIamPolicy",
                  "access_key": "AwsIamAccessKey",
                  "iam_group": "AwsIamGroup", "account": "AwsAccount"}
CIS_TYPE = "Software and Configuration Checks/Industry and Regulatory Standards/CIS AWS Foundations Benchmark"
HYGIENE_TYPE = "Software and Configuration Checks/AWS Security Best Practices"
POLICY_FILE = "policies/securityhub-import.json"


class SecurityHubExportError(RuntimeError):
    pass


@dataclass(frozen=True)
class Receiver:
    account_id: str
    region: str
    partition: str = "aws"

    @property
    def product_arn(self) -> str:
        return (f"arn:{self.partition}:securityhub:{self.region}:{self.account_id}:product/"
                f"{self.account_id}/default")


def _iso(value: datetime | date) -> str:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _resource(resource_id: str, resource_type: str | None, receiver: Receiver) -> dict:
    kind = RESOURCE_TYPES.get(resource_type or "", "Other")
    rid = f"AWS::::Account:{resource_id}" if kind == "AwsAccount" else resource_id
    return {"Type": kind, "Id": rid, "Partition": receiver.partition, "Region": receiver.region}


def asff(row: dict, snapshot_date: date, texts: dict[str, LogicTexts], receiver: Receiver,
         updated_at: datetime, *, status: str | None = None, record_state: str | None = None) -> dict:
    """One ASFF finding from a row of sql/exports/ocsf_findings.sql (status/record_state: as sent)."""
    checks = sorted(row["checks"], key=lambda c: (framework_sort_key(c["framework"]), c["check_id"]))
    worst = min(checks, key=lambda c: STATUS_ORDER.index(c["status"]))
    newest = max(checks, key=lambda c: framework_sort_key(c["framework"]))
    severity = min(checks, key=lambda c: severity_rank(c["severity"]))["severity"]
    logic = row["control_logic"]
    types = [CIS_TYPE if any(c["framework"].startswith("cis_") for c in checks) else HYGIENE_TYPE]
    text = texts.get(logic)
    fields = {"iam-audit/AccountId": row["account_id"], "iam-audit/ControlLogic": logic,
              "iam-audit/SnapshotDate": snapshot_date.isoformat(), "iam-audit/RunId": str(row["run_id"] or "")}
    if row.get("account_name"):
        fields["iam-audit/AccountName"] = _clip(row["account_name"], 512)
    if row.get("failing_since") and worst["status"] == "fail":
        fields["iam-audit/FailingSince"] = row["failing_since"].isoformat()
    finding = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_uid(logic, row["account_id"], row["resource_id"]),
        "ProductArn": receiver.product_arn,
        "GeneratorId": f"iam-audit/{logic}",
        "AwsAccountId": receiver.account_id,
        "Types": types,
        "CreatedAt": _iso(row.get("first_seen") or snapshot_date),
        "UpdatedAt": _iso(updated_at),
        "Severity": {"Label": severity.upper(), "Original": severity},
        "FindingProviderFields": {"Severity": {"Label": severity.upper(), "Original": severity}, "Types": types},
        "Title": _clip(newest["title"], 256),
        "Description": _clip(worst["reason"], 1024),
        "Resources": [_resource(row["resource_id"], row.get("resource_type"), receiver)],
        "Compliance": {"Status": status or STATUS[worst["status"]],
                       "RelatedRequirements": [f"{standard_name(c['framework'])}/{c['check_id']}"
                                               for c in checks][:32]},
        "RecordState": record_state or ("ARCHIVED" if worst["status"] == "pass" else "ACTIVE"),
        "ProductFields": fields,
    }
    if text:
        finding["Remediation"] = {"Recommendation": {"Text": _clip(text.remediation, 512)}}
    return finding


@dataclass
class Change:
    finding_id: str
    account_id: str
    control_logic: str
    resource_id: str
    status: str
    record_state: str
    finding: dict


@dataclass
class SendResult:
    changed: int = 0
    sent: int = 0
    unsent: int = 0
    failed: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def newest_sent_date(conn) -> date | None:
    return conn.execute("SELECT max(snapshot_date) FROM aws_policy_securityhub_findings").fetchone()[0]


def changes(conn, snapshot_date: date, receiver: Receiver, updated_at: datetime) -> Iterator[Change]:
    """The findings whose Security Hub state must change for the date (see the module's table)."""
    # the documents as sent are read only for the findings that vanished: memory stays small
    ledger = {fid: (status, state, logic, account) for fid, status, state, logic, account in conn.execute(
        "SELECT finding_id, compliance_status, record_state, control_logic, account_id "
        "FROM aws_policy_securityhub_findings")}
    complete = {tuple(r) for r in conn.execute(
        "SELECT DISTINCT account_id, control_logic FROM aws_policy_evaluations "
        "WHERE snapshot_date = %s AND error_reason IS NULL AND control_logic IS NOT NULL", (snapshot_date,))}
    texts, seen = logic_texts(), set()
    for row in finding_rows(conn, snapshot_date):
        finding = asff(row, snapshot_date, texts, receiver, updated_at)
        fid = finding["Id"]
        seen.add(fid)
        wanted = (finding["Compliance"]["Status"], finding["RecordState"])
        before = ledger.get(fid)
        if before is None and wanted[0] == "PASSED":
            continue
        if before is not None and before[:2] == wanted:
            continue
        yield Change(fid, row["account_id"], row["control_logic"], row["resource_id"], *wanted, finding)
    gone = [fid for fid, (_status, state, logic, account) in ledger.items()
            if fid not in seen and state == "ACTIVE" and (account, logic) in complete]
    for start in range(0, len(gone), 1000):
        for fid, account, logic, resource, finding in conn.execute(
                "SELECT finding_id, account_id, control_logic, resource_id, finding "
                "FROM aws_policy_securityhub_findings WHERE finding_id = ANY(%s) ORDER BY finding_id",
                (gone[start:start + 1000],)):
            archived = {**finding, "UpdatedAt": _iso(updated_at), "RecordState": "ARCHIVED",
                        "Compliance": {**finding["Compliance"], "Status": "NOT_AVAILABLE"},
                        "Description": f"The resource no longer exists in account {account} on {snapshot_date}"}
            yield Change(fid, account, logic, resource, "NOT_AVAILABLE", "ARCHIVED", archived)


def _batches(items: Iterator[Change], size: int = BATCH_SIZE) -> Iterator[list[Change]]:
    batch: list[Change] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _record(conn, batch: list[Change], accepted: set[str], snapshot_date: date, run_id: str) -> None:
    rows = [(c.finding_id, c.account_id, c.control_logic, c.resource_id, c.status, c.record_state,
             snapshot_date, run_id, json.dumps(c.finding)) for c in batch if c.finding_id in accepted]
    if not rows:
        return
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO aws_policy_securityhub_findings AS l (finding_id, account_id, control_logic, resource_id,
                   compliance_status, record_state, snapshot_date, run_id, finding, sent_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
               ON CONFLICT (finding_id) DO UPDATE SET compliance_status = EXCLUDED.compliance_status,
                   record_state = EXCLUDED.record_state, snapshot_date = EXCLUDED.snapshot_date,
                   run_id = EXCLUDED.run_id, finding = EXCLUDED.finding, sent_at = now()""", rows)


def _permanent_remedy(code: str, receiver: Receiver) -> str | None:
    if code == "InvalidAccessException":
        return (f"Security Hub is not enabled in {receiver.region} of account {receiver.account_id}: enable it "
                "there, or unset Variable iam_audit_securityhub_region")
    if code in ("AccessDeniedException", "AccessDenied"):
        return (f"the aws_default credentials may not call securityhub:BatchImportFindings on "
                f"{receiver.product_arn}: attach {POLICY_FILE}")
    return None


def send(conn, ledger_conn, client, snapshot_date: date, receiver: Receiver, run_id: str,
         updated_at: datetime | None = None) -> SendResult:
    """Send the date's changes, read through `conn`; `ledger_conn` (another connection, in autocommit
    or committed per batch) records each accepted finding as soon as its batch returns. Raises
    SecurityHubExportError when any finding was not accepted (after sending all the others)."""
    updated_at = updated_at or datetime.now(UTC)
    result = SendResult()

    def import_batch(batch: list[Change]) -> tuple[list[Change], dict | None, str | None]:
        try:
            answer = client.batch_import_findings(Findings=[c.finding for c in batch])
        except ClientError as exc:
            code = error_code(exc)
            remedy = _permanent_remedy(code, receiver)
            if remedy:
                raise SecurityHubExportError(remedy) from None
            return batch, None, f"{code}: {exc}"
        return batch, answer, None

    def settle(future) -> None:
        batch, answer, error = future.result()
        if error:
            result.errors.append(f"{len(batch)} findings not sent: {error}")
            result.unsent += len(batch)
            return
        failed = {f["Id"]: f for f in answer.get("FailedFindings", [])}
        result.failed += failed.values()
        accepted = {c.finding_id for c in batch} - set(failed)
        _record(ledger_conn, batch, accepted, snapshot_date, run_id)
        result.sent += len(accepted)

    # the changes stream through at most MAX_CONCURRENT_BATCHES batches in flight: memory stays flat
    in_flight: list = []
    with ThreadPoolExecutor(max_workers=MAX_CONCURRENT_BATCHES, thread_name_prefix="securityhub") as pool:
        for batch in _batches(changes(conn, snapshot_date, receiver, updated_at)):
            result.changed += len(batch)
            in_flight.append(pool.submit(import_batch, batch))
            if len(in_flight) >= MAX_CONCURRENT_BATCHES:
                settle(in_flight.pop(0))
        for future in in_flight:
            settle(future)
    log.info("Security Hub %s/%s: %d changed findings of %s, %d accepted", receiver.account_id, receiver.region,
             result.changed, snapshot_date, result.sent)
    if result.failed or result.errors:
        reasons = [f"{f['Id']}: {f.get('ErrorCode')}: {f.get('ErrorMessage')}" for f in result.failed[:5]]
        raise SecurityHubExportError(
            f"Security Hub accepted {result.sent} of {result.changed} changed findings; "
            f"{len(result.failed)} refused, {result.unsent} not sent "
            "(the next run sends them again): " + "; ".join(reasons + result.errors[:3]))
    return result
