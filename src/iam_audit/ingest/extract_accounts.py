"""Extract: one account at a time, assume its audit role, read its data sets (ingest.extract) and store
them with their manifest (ingest.snapshot); several accounts of one task in threads, each on its own.

No Airflow here: the extract_account task (iam_audit.tasks) gives the connection, the external id and
the plan, and turns these errors into retries or failures.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from iam_audit.aws import AwsTarget, assume_role_remedy, dataset_remedy, error_code, is_permanent
from iam_audit.config import AuditConfig
from iam_audit.ingest import layout
from iam_audit.ingest.extract import extract_account_datasets, unreachable_account
from iam_audit.ingest.raw_store import RawObjectMissing
from iam_audit.ingest.snapshot import write_account_snapshot

log = logging.getLogger(__name__)

class AccountExtractionError(RuntimeError):
    """The account's data is incomplete; a retry may help (throttling, 5xx, network)."""


class PermanentExtractionError(AccountExtractionError):
    """The account's data is incomplete for reasons a retry cannot fix (access denied, missing role)."""


# Codes of data sets that were not collected because another data set failed: the other one decides.
DEPENDENT_ERRORS = {"CredentialReportUnavailable", "RegionsUnavailable"}

# Accounts of one mapped extract task extracted at once.
BATCH_THREADS = 4


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



def extract_accounts(target: AwsTarget, config: AuditConfig, store, snapshot_date, accounts: list[dict],
                     run_id: str | None, poll_budget_seconds: float = 120.0
                     ) -> tuple[dict[str, dict], dict[str, Exception]]:
    """extract_one for each account (in threads when there are several): the summaries of those
    extracted and the exception of each that failed."""
    extracted: dict[str, dict] = {}
    failed: dict[str, Exception] = {}

    def one(account: dict) -> None:
        try:
            extracted[account["account_id"]] = extract_one(
                target, config, store, snapshot_date, account, run_id, poll_budget_seconds=poll_budget_seconds)
        except PermanentExtractionError as exc:
            failed[account["account_id"]] = exc
        except Exception as exc:  # noqa: BLE001 - one account's failure must not stop the others
            log.warning("account %s: %s: %s", account["account_id"], type(exc).__name__, exc)
            failed[account["account_id"]] = exc

    if len(accounts) == 1:
        one(accounts[0])
    elif accounts:
        with ThreadPoolExecutor(max_workers=min(BATCH_THREADS, len(accounts))) as pool:
            list(pool.map(one, accounts))
    return extracted, failed


def stored_summary(store, prefix: str, snapshot_date, account_id: str, run_id: str) -> dict | None:
    """The account's summary (as extract_one gives it) when run `run_id` already stored it with every data
    set (its manifest says so); None otherwise."""
    key = layout.manifest_key(prefix, snapshot_date, account_id)
    try:
        manifest = json.loads(store.get(key))
    except (RawObjectMissing, ValueError):
        return None
    datasets = manifest.get("datasets") or {}
    if (manifest.get("incomplete") or manifest.get("run_id") != run_id or not datasets
            or any(d.get("status") != "ok" for d in datasets.values())):
        return None
    return {"account_id": account_id, "manifest_key": key, "datasets_ok": len(datasets), "datasets_failed": []}
