"""Discover: which accounts this run audits.

Live: the organisation's ACTIVE accounts (Organizations ListAccounts), or Variable iam_audit_accounts, or the
trigger's subset, or the caller's own account outside an organisation. Replay: the accounts with a snapshot
stored for the date, plus the expected ones without (flagged, skipped). No Airflow here: the discover_accounts
task (iam_audit.tasks) gives the connection and the plan.
"""

from __future__ import annotations

import logging

from botocore.exceptions import ClientError

from iam_audit.aws import AwsTarget, error_code
from iam_audit.config import AuditConfig, ConfigError
from iam_audit.ingest import layout
from iam_audit.ingest.load import ACCOUNT_ID
from iam_audit.ingest.raw_store import RawObjectMissing, RawStoreError

log = logging.getLogger(__name__)

NOT_IN_ORG_ERRORS = {"AWSOrganizationsNotInUseException"}
ORG_DENIED_ERRORS = {"AccessDeniedException", "AccessDenied"}


class OrganizationsAccessDenied(ConfigError):
    pass


# A replay lists the date's objects: bounded, so a flood of objects cannot exhaust the task's memory.
MAX_STORED_ACCOUNTS = 20_000


class NothingToReplay(RuntimeError):
    """No account has a stored snapshot of the date: a replay would check nothing."""


def list_organization_accounts(target: AwsTarget) -> list[dict] | None:
    """Every account of the organisation (Organizations ListAccounts), or None when the caller's
    account is not in an organisation (AWSOrganizationsNotInUseException).

    AccessDenied is not "standalone": it is a configuration error, raised as OrganizationsAccessDenied.
    """
    try:
        accounts: list[dict] = []
        for page in target.client("organizations").get_paginator("list_accounts").paginate():
            accounts += page["Accounts"]
        return accounts
    except ClientError as exc:
        code = error_code(exc)
        if code in ORG_DENIED_ERRORS:
            raise OrganizationsAccessDenied(
                f"organizations:ListAccounts was refused ({code}) for the aws_default connection, so the "
                "organisation's accounts cannot be discovered. Only the organisation's management account or a "
                "delegated administrator account may list accounts: run the pipeline's principal there with "
                "policies/pipeline-discovery.json attached (and no SCP denying it), or set Variable "
                "iam_audit_accounts to the account ids to audit"
            ) from None
        if code not in NOT_IN_ORG_ERRORS:
            raise
        log.warning("the caller's account is not in an organisation (%s): auditing that account only", code)
        return None


def discover_accounts(target: AwsTarget, config: AuditConfig, requested: list[str] | None = None,
                      org_accounts: list[dict] | None = None) -> list[dict]:
    """Accounts to audit: the trigger's subset, else iam_audit_accounts, else Organizations' ACTIVE accounts."""
    names = {a["Id"]: a.get("Name") for a in org_accounts or []}
    if requested:
        ids = list(requested)
    elif config.accounts:
        ids = list(config.accounts)
    elif org_accounts is not None:
        ids = [a["Id"] for a in org_accounts if account_state(a) == "ACTIVE"]
        if not ids:
            raise ConfigError("the organisation has no ACTIVE accounts: nothing to audit")
    else:
        ids = [target.client("sts").get_caller_identity()["Account"]]
    return [{"account_id": i, "account_name": names.get(i) or ""} for i in ids]


def account_state(account: dict) -> str | None:
    return account.get("State") or account.get("Status")


def stored_accounts(store, prefix: str, snapshot_date) -> list[dict]:
    """Accounts with a raw snapshot for the date (replay mode: no IAM or Organizations call)."""
    from iam_audit.ingest.load import max_objects_per_account

    base = f"{prefix}/snapshot_date={snapshot_date}/"
    per_account = max_objects_per_account()
    keys = store.list_keys(base, max_keys=MAX_STORED_ACCOUNTS * per_account + 100)
    counts: dict[str, int] = {}
    for k in keys:
        folder = k[len(base):].split("/")[0]
        if folder.startswith("account_id="):
            counts[folder] = counts.get(folder, 0) + 1
    crowded = sorted(f for f, n in counts.items() if n > per_account)
    if crowded:
        raise RawStoreError(
            f"{store.url(base)}: {', '.join(crowded[:5])} hold(s) more objects than a snapshot writes "
            f"(at most {per_account}: its data sets and manifest): refused, these were not written by the pipeline")
    ids = sorted({k[len(base):].split("/")[0].removeprefix("account_id=") for k in keys
                  if k.endswith(layout.MANIFEST)})
    stray = [i for i in ids if not ACCOUNT_ID.match(i)]
    if stray:
        log.warning("ignoring manifests under %s that are not in an account_id=<12 digits>/ folder: %s",
                    base, ", ".join(stray))
    ids = [i for i in ids if ACCOUNT_ID.match(i)]
    return [{"account_id": i, "account_name": ""} for i in ids]



def replay_accounts(store, prefix: str, snapshot_date, expected: list[str] | tuple[str, ...] | None,
                    only_expected: bool = False) -> list[dict]:
    """Accounts to re-evaluate: those with a stored snapshot, plus the expected ones without (flagged
    missing_snapshot, skipped). `expected`: the trigger's subset or iam_audit_accounts; without either, the
    ACTIVE accounts of the date's stored organisation list. `only_expected` (a trigger's subset): the stored
    accounts outside it are left out."""
    stored = {a["account_id"]: a for a in stored_accounts(store, prefix, snapshot_date)}
    wanted = set(expected or [])
    names = {}
    if not wanted:
        key = layout.organization_key(prefix, snapshot_date)
        try:
            organisation = layout.decode(store.get(key), store.url(key))
            wanted = {a["Id"] for a in organisation if account_state(a) == "ACTIVE"}
            names = {a["Id"]: a.get("Name") or "" for a in organisation}
        except RawObjectMissing:
            wanted = set(stored)
    accounts = []
    for account_id in sorted(wanted | (set(stored) if not only_expected else set())):
        name = names.get(account_id, "")
        if account_id in stored:
            accounts.append({"account_id": account_id, "account_name": name})
        else:
            log.warning("account %s: no stored snapshot for %s: skipped, no verdicts written",
                        account_id, snapshot_date)
            accounts.append({"account_id": account_id, "account_name": name, "missing_snapshot": True})
    found = sum(not a.get("missing_snapshot") for a in accounts)
    log.info("replay of %s: %d of %d accounts have a stored snapshot", snapshot_date, found, len(accounts))
    if not found:
        raise NothingToReplay(
            f"replay of {snapshot_date}: nothing to replay, no stored snapshot under "
            f"s3://{store.bucket}/{prefix}/snapshot_date={snapshot_date}/"
            + (f" for any of the {len(accounts)} expected account(s)" if accounts else "")
            + ". Only dates audited live can be replayed; "
            "check Variable iam_audit_bucket if this date was audited.")
    return accounts
