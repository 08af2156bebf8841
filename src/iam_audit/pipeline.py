"""The bodies of the aws_iam_cis DAG's tasks, as plain functions (the DAG file only wires them)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from iam_audit.aws import AwsTarget, assume_role_remedy, dataset_remedy, error_code, is_permanent
from iam_audit.config import AuditConfig, ConfigError
from iam_audit.ingest import layout
from iam_audit.ingest.extract import extract_account_datasets, unreachable_account
from iam_audit.ingest.load import (
    ACCOUNT_ID,
    SnapshotMissing,
    changed_since_live_load,
    prepare_account,
    record_digest_rows,
    recorded_digests,
    sha256,
    write_accounts_with_retry,
)
from iam_audit.ingest.raw_store import RawStoreError
from iam_audit.ingest.snapshot import write_account_snapshot
from iam_audit.run_modes import run_mode  # noqa: F401 - re-exported: the rule lives in run_modes

log = logging.getLogger(__name__)

NOT_IN_ORG_ERRORS = {"AWSOrganizationsNotInUseException"}
ORG_DENIED_ERRORS = {"AccessDeniedException", "AccessDenied"}


class OrganizationsAccessDenied(ConfigError):
    pass


class AccountExtractionError(RuntimeError):
    """The account's data is incomplete; a retry may help (throttling, 5xx, network)."""


class PermanentExtractionError(AccountExtractionError):
    """The account's data is incomplete for reasons a retry cannot fix (access denied, missing role)."""


# Codes of data sets that were not collected because another data set failed: the other one decides.
DEPENDENT_ERRORS = {"CredentialReportUnavailable", "RegionsUnavailable"}


class LoadError(RuntimeError):
    pass


# A replay lists the date's objects: bounded, so a flood of objects cannot exhaust the task's memory.
MAX_STORED_ACCOUNTS = 20_000


# ---- plan ------------------------------------------------------------------------

def select_frameworks(requested: list[str] | None, available: tuple[str, ...]) -> list[str]:
    if not requested:
        return list(available)
    unknown = sorted(set(requested) - set(available))
    if unknown:
        raise ConfigError(f"param frameworks holds unknown frameworks {unknown}; available: {list(available)}")
    return [f for f in available if f in requested]


# ---- discover --------------------------------------------------------------------

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


# ---- extract ---------------------------------------------------------------------

def extract_one(target: AwsTarget, config: AuditConfig, store, snapshot_date, account: dict,
                run_id: str | None, poll_budget_seconds: float = 120.0) -> dict:
    account_id, account_name = account["account_id"], account.get("account_name")
    role_arn = config.role_arn(account_id)
    extracted_at = datetime.now(UTC)
    try:
        role_arn = config.role_arn(account_id, target.partition())
        session = target.assume_role(role_arn, config.external_id)
    except (ClientError, BotoCoreError) as exc:
        code = error_code(exc)
        message = f"could not assume {role_arn}: {code}: {exc}"
        if is_permanent(code):
            message += f". Fix: {assume_role_remedy(role_arn, code)}"
        write_account_snapshot(store, config.prefix, snapshot_date, account_id, account_name,
                               unreachable_account(code, message), run_id, extracted_at,
                               organization_sha256=account.get("organization_sha256"))
        error = PermanentExtractionError if is_permanent(code) else AccountExtractionError
        raise error(f"account {account_id}: {message}") from None

    results = extract_account_datasets(target, session, poll_budget_seconds=poll_budget_seconds)
    write_account_snapshot(store, config.prefix, snapshot_date, account_id, account_name,
                           results, run_id, extracted_at, organization_sha256=account.get("organization_sha256"))
    failed = {name: r for name, r in results.items() if not r.ok}
    summary = {
        "account_id": account_id,
        "manifest_key": layout.manifest_key(config.prefix, snapshot_date, account_id),
        "datasets_ok": len(results) - len(failed),
        "datasets_failed": sorted(failed),
    }
    for name, r in results.items():
        log.info("account %s: %-22s %s%s", account_id, name, r.status,
                 f" ({r.error_code}: {r.error_message})" if not r.ok else "")
    if failed:
        codes = {r.error_code for r in failed.values()} - DEPENDENT_ERRORS
        permanent = bool(codes) and all(is_permanent(c) for c in codes)
        raise (PermanentExtractionError if permanent else AccountExtractionError)(
            f"account {account_id}: {len(failed)} of {len(results)} data sets not collected: "
            + "; ".join(f"{n} ({r.error_code})" for n, r in sorted(failed.items()))
            + f". What was collected is stored under {summary['manifest_key'].rsplit('/', 1)[0]}/"
            + (f". Not retried, a retry cannot fix it: {dataset_remedy(min(codes))}" if permanent else "")
        )
    return summary


# ---- load ------------------------------------------------------------------------

@dataclass
class LoadReport:
    loaded: dict[str, int] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    organization_sha256: set[str] = field(default_factory=set)  # as the loaded manifests record it


def load_snapshot(store, prefix: str, snapshot_date, accounts: list[dict], connect: Callable,
                  mode: str = "live", run_id: str | None = None, workers: int = 4,
                  batch_size: int = 25, allow_unhashed: bool = False) -> LoadReport:
    """Load every account's snapshot; each account is written all-or-nothing.

    Accounts are read and transformed in threads, `batch_size` at a time, then written in one
    transaction per batch (see load.write_accounts).
    live: an account with no snapshot written by this run (its extraction failed) gets an
          'error' record for every data set, so its checks say error.
    replay: such an account is skipped with the reason and gets no verdicts.
    Any other per-account failure (unreadable or denied object, KMS, checksum mismatch, a stray
    key, a shape the transform does not expect, rows the database refuses) records the account
    as failed to load (report.failed): its checks say error, and the other accounts load.
    """
    from iam_audit.ingest.load import load_failed

    report = LoadReport()
    # A live load records each manifest's SHA-256 in PostgreSQL; a replay must read the same bytes.
    recorded: dict[str, str] = {}
    if mode != "live":
        conn = connect()
        try:
            recorded = recorded_digests(conn, snapshot_date)
        finally:
            conn.close()

    def prepare(account: dict):
        account_id = account["account_id"]
        url = store.url(layout.manifest_key(prefix, snapshot_date, account_id))
        try:
            return account_id, "loaded", prepare_account(store, prefix, snapshot_date, account_id,
                                                         written_by_run=run_id if mode == "live" else None,
                                                         recorded_manifest_sha256=recorded.get(url),
                                                         allow_unhashed=allow_unhashed)
        except SnapshotMissing as exc:
            return account_id, "missing", str(exc)
        except (layout.CorruptObjectError, RawStoreError) as exc:
            return account_id, "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - one account's surprise must not abort the others
            log.exception("account %s: unexpected failure while reading its snapshot", account_id)
            return account_id, "failed", f"{type(exc).__name__}: {exc}"

    def failed(account: dict, reason: str):
        report.failed[account["account_id"]] = reason
        log.error("account %s: %s", account["account_id"], reason)
        return load_failed(account["account_id"], account.get("account_name"), reason, run_id,
                           datetime.now(UTC).isoformat())

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(accounts), batch_size):
            chunk = accounts[start:start + batch_size]
            by_id = {a["account_id"]: a for a in chunk}
            batch, loaded = [], {}
            for account_id, outcome, detail in pool.map(prepare, chunk):
                if outcome == "loaded":
                    batch.append(detail)
                    loaded[account_id] = detail.row_count
                    if detail.organization_sha256:
                        report.organization_sha256.add(detail.organization_sha256)
                elif outcome == "missing":
                    report.missing[account_id] = detail
                    log.warning("account %s: %s", account_id, detail)
                    if mode == "live":
                        batch.append(_unreachable(by_id[account_id], detail, run_id))
                else:
                    batch.append(failed(by_id[account_id], detail))
            record = mode == "live"
            try:
                write_accounts_with_retry(connect, snapshot_date, batch, record_digests=record)
            except psycopg.OperationalError:
                raise  # the database itself is unavailable: nothing account-specific to record
            except psycopg.Error as exc:
                # One account's rows were refused (a constraint, a value of the wrong type):
                # write the batch account by account so only that account fails.
                log.warning("batch of %d accounts refused (%s): writing them one by one", len(batch),
                            type(exc).__name__)
                for prepared in batch:
                    try:
                        write_accounts_with_retry(connect, snapshot_date, [prepared], record_digests=record)
                    except psycopg.OperationalError:
                        raise
                    except psycopg.Error as one:
                        loaded.pop(prepared.account_id, None)
                        reason = (f"the database refused its staging rows: {type(one).__name__}: "
                                  f"{str(one).strip().splitlines()[0] if str(one).strip() else ''}")
                        write_accounts_with_retry(connect, snapshot_date,
                                                  [failed(by_id[prepared.account_id], reason)])
            for account_id, rows in loaded.items():
                report.loaded[account_id] = rows
                log.info("account %s: loaded %s staging rows", account_id, rows)
    return report


@dataclass
class AccountSetShrink:
    previous_date: str
    previous: int
    current: int
    missing: list[str]

    def message(self, max_drop_percent: float) -> str:
        return (f"the audited accounts dropped from {self.previous} (snapshot {self.previous_date}) to "
                f"{self.current}, more than the {max_drop_percent:g}% allowed by Variable "
                f"iam_audit_max_account_drop_percent; missing: {', '.join(self.missing[:20])}"
                + (f" and {len(self.missing) - 20} more" if len(self.missing) > 20 else "")
                + ". Their verdicts of this date were kept. If accounts really left, raise the threshold for "
                "one run; otherwise check Organizations access (organizations:ListAccounts) and "
                "Variable iam_audit_accounts")


def account_set_shrink(snapshot_date, keep: list[str], connect: Callable,
                       max_drop_percent: float) -> AccountSetShrink | None:
    """The sharp shrink of this run's accounts against the latest stored snapshot (this date's on a rerun)."""
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT max(snapshot_date) FROM iam_stage.accounts WHERE snapshot_date <= %s",
                        (str(snapshot_date),))
            previous_date = cur.fetchone()[0]
            if previous_date is None:
                return None
            cur.execute("SELECT account_id FROM iam_stage.accounts WHERE snapshot_date = %s", (previous_date,))
            previous = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    missing = sorted(previous - set(keep))
    if not previous or len(missing) * 100 <= max_drop_percent * len(previous):
        return None
    return AccountSetShrink(str(previous_date), len(previous), len(set(keep)), missing)


def prune_other_accounts(snapshot_date, keep: list[str], connect: Callable) -> list[str]:
    """Remove staging rows and verdicts of the date for accounts this full run no longer audits
    (closed accounts, a changed iam_audit_accounts), so the date's snapshot is this run's."""
    from iam_audit.ingest.load import STAGING_TABLES

    conn = connect()
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT account_id FROM iam_stage.accounts WHERE snapshot_date = %s "
                        "AND NOT (account_id = ANY(%s))", (str(snapshot_date), keep))
            stale = [row[0] for row in cur.fetchall()]
            if stale:
                for table in STAGING_TABLES:
                    cur.execute(f"DELETE FROM iam_stage.{table} WHERE snapshot_date = %s "  # noqa: S608
                                "AND account_id = ANY(%s)", (str(snapshot_date), stale))
                cur.execute("DELETE FROM aws_policy_results WHERE snapshot_date = %s AND account_id = ANY(%s)",
                            (str(snapshot_date), stale))
    finally:
        conn.close()
    if stale:
        log.warning("removed the %s snapshot of %d account(s) this run no longer audits: %s",
                    snapshot_date, len(stale), ", ".join(stale))
    return stale


class EvidenceMismatch(LoadError):
    """A stored object differs from what its manifests or the live load recorded."""


def load_organization(store, prefix: str, snapshot_date, connect: Callable, mode: str = "live",
                      manifest_hashes: set[str] | frozenset[str] = frozenset(),
                      run_id: str | None = None) -> int | None:
    """Stage the organisation's account list of the snapshot, if one was stored, once verified: its SHA-256
    must be the one the loaded manifests record and, in a replay, the one the live load recorded.
    On a mismatch the date's organisation rows are removed (the trust checks must not use an edited
    list) and EvidenceMismatch names the object."""
    from iam_audit.ingest.raw_store import RawObjectMissing

    key = layout.organization_key(prefix, snapshot_date)
    url = store.url(key)
    try:
        blob = store.get(key)
    except RawObjectMissing:
        if manifest_hashes:
            _clear_organization(connect, snapshot_date)
            raise EvidenceMismatch(
                f"{url} is recorded in the manifests of {snapshot_date} but does not exist") from None
        return None
    digest = sha256(blob)
    problem = None
    if len(manifest_hashes) > 1:
        problem = (f"the manifests of {snapshot_date} record {len(manifest_hashes)} different SHA-256 for {url}: "
                   "some were rewritten")
    elif manifest_hashes and digest not in manifest_hashes:
        problem = (f"{url} does not match the SHA-256 recorded in the manifests of {snapshot_date} (recorded "
                   f"{next(iter(manifest_hashes))}, read {digest}): the object was changed after extraction")
    if problem is None and mode != "live":
        conn = connect()
        try:
            recorded = recorded_digests(conn, snapshot_date).get(url)
        finally:
            conn.close()
        if recorded is not None and recorded != digest:
            problem = changed_since_live_load(url, recorded, digest, snapshot_date)
    if problem is not None:
        _clear_organization(connect, snapshot_date)
        raise EvidenceMismatch(problem)
    accounts = layout.decode(blob, url)
    conn = connect()
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("DELETE FROM iam_stage.organization_accounts WHERE snapshot_date = %s", (str(snapshot_date),))
            if mode == "live":
                record_digest_rows(cur, snapshot_date, [(url, digest, run_id)])
            with cur.copy("COPY iam_stage.organization_accounts (snapshot_date, account_id, account_name, status) "
                          "FROM STDIN") as copy:
                for a in accounts:
                    copy.write_row((str(snapshot_date), a["Id"], a.get("Name"), account_state(a)))
    finally:
        conn.close()
    return len(accounts)


def _clear_organization(connect: Callable, snapshot_date) -> None:
    conn = connect()
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("DELETE FROM iam_stage.organization_accounts WHERE snapshot_date = %s", (str(snapshot_date),))
    finally:
        conn.close()


def _unreachable(account: dict, reason: str, run_id: str | None):
    from iam_audit.ingest.extract import DATASETS
    from iam_audit.ingest.load import PreparedAccount

    return PreparedAccount(
        account_id=account["account_id"],
        account_name=account.get("account_name"),
        extracted_at=datetime.now(UTC).isoformat(),
        run_id=run_id,
        raw_prefix="",
        status_rows=[(d, "error", "NoSnapshot", reason, None) for d in DATASETS],
        tables={},
    )
