"""`make preflight`: the configuration checked before any audit, with the user's real settings.

The discovery credentials (GetCallerIdentity, then the account list: iam_audit_accounts or Organizations
ListAccounts), AssumeRole into each account exactly as the extraction does it (the audit session policy,
the ExternalId), one read per data set in each account (a handful of calls per account, Access Analyzer
in one region only), the bucket (a write under <prefix>/_preflight/ with the pipeline's encryption, read
back, its encryption), and PostgreSQL (a writable session, CREATE on the schema, the reader role). Every
problem comes with the permission, policy file or template that fixes it.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from iam_audit.aws import assume_role_remedy, error_code
from iam_audit.ingest.datasets import DATASETS

AUDIT_POLICY = "policies/audit-role-permissions.json (deploy/cloudformation/audit-role.yaml)"
DISCOVERY_POLICY = "policies/pipeline-discovery.json"
WRITER_POLICY = "policies/s3-raw-writer.json"
READER_POLICY = "policies/s3-raw-reader.json"
PREFLIGHT_KEY = "_preflight/preflight.json"
# Answers that prove the call was authorised although there was nothing to return.
AUTHORISED_EMPTY = {"NoSuchEntity", "ResourceNotFoundException", "ReportNotPresent", "ReportInProgress"}


@dataclass
class Finding:
    scope: str        # "discovery", "bucket", "postgres", or an account id
    item: str         # what was checked (a data set, "assume role", ...)
    ok: bool
    detail: str = ""  # what was seen
    fix: str = ""     # what to change when not ok


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    accounts: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def add(self, *args, **kwargs) -> Finding:
        finding = Finding(*args, **kwargs)
        self.findings.append(finding)
        return finding


def _first_user(iam) -> str | None:
    users = iam.get_account_authorization_details(Filter=["User"], MaxItems=1).get("UserDetailList", [])
    return users[0]["UserName"] if users else None


def dataset_reads(session, target) -> list[tuple[str, str, object]]:
    """(data set, IAM action, call) per read of the registry's data sets: one cheap call each
    (iam_audit.ingest.datasets `probes`; the two below need another answer first)."""
    clients: dict[str, object] = {}

    def client(service: str):
        if service not in clients:
            clients[service] = target.client(service, session=session)
        return clients[service]

    state: dict[str, str | None] = {}

    def access_keys():
        user = state.get("user")
        if user is None:
            return "no IAM user to list keys of"
        client("iam").list_access_keys(UserName=user, MaxItems=1)
        return None

    def authorization_details():
        state["user"] = _first_user(client("iam"))

    own = {"authorization_details": [("iam:GetAccountAuthorizationDetails", authorization_details)],
           "access_keys": [("iam:ListAccessKeys", access_keys)]}
    reads = []
    for dataset in DATASETS:
        if dataset.name in own:
            reads += [(dataset.name, action, call) for action, call in own[dataset.name]]
        else:
            reads += [(dataset.name, action,
                       lambda s=service, m=method, k=kwargs: getattr(client(s), m)(**k))
                      for action, service, method, kwargs in dataset.probes]
    return reads


def check_account(target, config, account: dict) -> list[Finding]:
    account_id = account["account_id"]
    findings = []
    role_arn = config.role_arn(account_id, target.partition())
    try:
        session = target.assume_role(role_arn, config.external_id)
    except (ClientError, BotoCoreError) as exc:
        code = error_code(exc)
        return [Finding(account_id, "assume role", False, f"{role_arn}: {code}", assume_role_remedy(role_arn, code))]
    findings.append(Finding(account_id, "assume role", True, role_arn + (" with ExternalId" if config.external_id
                                                                        else "") + " and the audit session policy"))
    for dataset, action, call in dataset_reads(session, target):
        try:
            skipped = call()
        except (ClientError, BotoCoreError) as exc:
            code = error_code(exc)
            if code in AUTHORISED_EMPTY:
                findings.append(Finding(account_id, dataset, True, f"{action}: allowed ({code})"))
                continue
            findings.append(Finding(
                account_id, dataset, False, f"{action}: {code}",
                f"allow {action} to the audit role ({AUDIT_POLICY}), and exempt the role from any service "
                "control policy that denies it" if code.startswith(("AccessDenied", "Unauthorized"))
                else f"{action} failed: {code}: {exc}"))
            continue
        findings.append(Finding(account_id, dataset, True, f"{action}: {skipped}" if skipped else f"{action}: ok"))
    return findings


def check_bucket(store, prefix: str, report: Report) -> None:
    where = f"s3://{store.bucket}/{prefix}/"
    unreadable = store.check_readable(prefix)
    if unreadable:
        fix = (f"create the bucket {store.bucket!r} (or fix Variable iam_audit_bucket)" if "does not exist"
               in unreadable else f"allow s3:ListBucket with s3:prefix {prefix}/* ({READER_POLICY})")
        report.add("bucket", "list", False, unreadable, fix)
        return
    report.add("bucket", "list", True, where)
    key = f"{prefix}/{PREFLIGHT_KEY}"
    body = json.dumps({"preflight": str(uuid.uuid4()), "at": datetime.now(UTC).isoformat()}).encode()
    try:
        store.put(key, body, content_type="application/json")
    except Exception as exc:  # noqa: BLE001 - reported, with the fix
        report.add("bucket", "write", False, str(exc),
                   f"allow s3:PutObject on arn:aws:s3:::{store.bucket}/{prefix}/* with server-side encryption "
                   f"({WRITER_POLICY}); with iam_audit_kms_key_id, also kms:GenerateDataKey on the key")
        return
    report.add("bucket", "write", True, f"{store.url(key)} (left there: the writer may not delete)")
    try:
        read = store.get(key)
        head = store.hook.get_conn().head_object(Bucket=store.bucket, Key=key)
    except Exception as exc:  # noqa: BLE001
        report.add("bucket", "read back", False, str(exc),
                   f"allow s3:GetObject on arn:aws:s3:::{store.bucket}/{prefix}/* ({READER_POLICY}); with "
                   "iam_audit_kms_key_id, also kms:Decrypt on the key")
        return
    report.add("bucket", "read back", read == body, "identical" if read == body else "the object read back differs",
               "" if read == body else "something rewrites objects under the prefix (a lifecycle or a replication?)")
    encryption = head.get("ServerSideEncryption")
    report.add("bucket", "encryption", bool(encryption), encryption or "none",
               "" if encryption else "turn on default encryption of the bucket")


# What the pipeline's login needs, checked in one statement.
POSTGRES_CHECKS = """
SELECT current_user, current_schema(), current_setting('transaction_read_only') = 'on', pg_is_in_recovery(),
       has_schema_privilege(current_schema(), 'CREATE'), has_database_privilege(current_database(), 'TEMP'),
       EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'compliance_reader'),
       (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user)
"""


def check_postgres(connect, report: Report) -> None:
    try:
        conn = connect()
    except Exception as exc:  # noqa: BLE001
        report.add("postgres", "connect", False, f"{type(exc).__name__}: {str(exc).strip()[:300]}",
                   "fix the postgres_default connection (host, port, database, login, password, sslmode)")
        return
    try:
        with conn.cursor() as cur:
            cur.execute(POSTGRES_CHECKS)
            user, schema, read_only, replica, create, temp, reader, may_create_role = cur.fetchone()
    finally:
        conn.close()
    report.add("postgres", "connect", True, f"as {user}, schema {schema}")
    report.add("postgres", "writable", not (read_only or replica),
               "a read-only session" + (" (a standby)" if replica else "") if read_only or replica else "yes",
               "" if not (read_only or replica) else
               f"point postgres_default at the primary, or ALTER ROLE {user} SET default_transaction_read_only = off")
    report.add("postgres", "create in schema", bool(create), f"CREATE on schema {schema}: {'yes' if create else 'no'}",
               "" if create else f"GRANT CREATE ON SCHEMA {schema} TO {user} (the first run creates the tables and "
                                 "views there)")
    report.add("postgres", "reader role", bool(reader or may_create_role),
               "compliance_reader exists" if reader else
               ("the first run creates compliance_reader" if may_create_role else "compliance_reader is missing"),
               "" if reader or may_create_role else
               "a DBA runs CREATE ROLE compliance_reader NOLOGIN once (the next run grants it the views)")


def run_preflight(aws_conn_id: str = "aws_default", postgres_conn_id: str = "postgres_default",
                  workers: int = 4) -> Report:
    from iam_audit.aws import target_from_connection
    from iam_audit.config import ConfigError, build_config, read_variables
    from iam_audit.database import pipeline_hook
    from iam_audit.ingest.discover import OrganizationsAccessDenied, discover_accounts, list_organization_accounts
    from iam_audit.ingest.raw_store import S3RawStore

    report = Report()
    try:
        config = build_config(read_variables())
    except ConfigError as exc:
        report.add("configuration", "Variables", False, str(exc), "fix the Variables named above")
        return report
    target = target_from_connection(aws_conn_id)
    try:
        identity = target.client("sts").get_caller_identity()
        report.add("discovery", "credentials", True, identity["Arn"])
    except (ClientError, BotoCoreError) as exc:
        report.add("discovery", "credentials", False, f"sts:GetCallerIdentity: {error_code(exc)}",
                   f"fix the {aws_conn_id} connection's credentials")
        return report
    org_accounts = None
    if not config.accounts:
        try:
            org_accounts = list_organization_accounts(target)
            report.add("discovery", "account list", True,
                       "Organizations ListAccounts" if org_accounts is not None else "not in an organisation: the "
                       "caller's own account")
        except OrganizationsAccessDenied as exc:
            report.add("discovery", "account list", False, str(exc),
                       f"allow organizations:ListAccounts ({DISCOVERY_POLICY}) in the management account or a "
                       "delegated administrator, or set Variable iam_audit_accounts")
            return report
    else:
        report.add("discovery", "account list", True, f"Variable iam_audit_accounts ({len(config.accounts)})")
    report.accounts = discover_accounts(target, config, None, org_accounts)
    check_bucket(S3RawStore(config.bucket, aws_conn_id=aws_conn_id, kms_key_id=config.kms_key_id), config.prefix,
                 report)
    check_postgres(pipeline_hook(postgres_conn_id).get_conn, report)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for findings in pool.map(lambda a: check_account(target, config, a), report.accounts):
            report.findings += findings
    return report


def format_report(report: Report) -> str:
    names = {a["account_id"]: a.get("account_name") or "" for a in report.accounts}
    lines = ["Preflight: the configuration checked before an audit", ""]
    general = [f for f in report.findings if not f.scope.isdigit()]
    lines.append(f"{'check':<28} {'result':<8} detail")
    for f in general:
        lines.append(f"{f.scope + ' ' + f.item:<28} {'ok' if f.ok else 'MISSING':<8} {f.detail}")
        if not f.ok:
            lines.append(f"{'':<37}fix: {f.fix}")
    if report.accounts:
        lines += ["", f"{'account':<14} {'name':<18} {'data set':<22} {'result':<8} detail"]
        for account in report.accounts:
            account_id = account["account_id"]
            own = [f for f in report.findings if f.scope == account_id]
            bad = [f for f in own if not f.ok]
            label = f"{account_id:<14} {names[account_id][:18]:<18}"
            if own and not bad:
                lines.append(f"{label} {'(all ' + str(len(own) - 1) + ' reads)':<22} {'ok':<8} assume role and one "
                             "read per data set")
            for f in bad:
                lines.append(f"{label} {f.item:<22} {'MISSING':<8} {f.detail}")
                lines.append(f"{'':<65}fix: {f.fix}")
    problems = sum(not f.ok for f in report.findings)
    lines += ["", "Ready for a first run." if report.ok else f"{problems} problem(s) to fix before a run."]
    return "\n".join(lines)
