"""Load: a date's stored snapshots into iam_stage, every account all-or-nothing, under the date's lock.

load_date is the load_staging task's work: with a full live run, first the guard against a sharply smaller
account set (or the pruning of accounts no longer audited), then the account tags, the organisation's data
sets, every account's snapshot (ingest.load reads, checks and writes one) and the organisation list, whose
SHA-256 the accounts' manifests record; then fresh planner statistics. No Airflow here: the task
(iam_audit.tasks) gives the connection and the plan, and fails the run on what this reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from iam_audit.ingest import layout
from iam_audit.ingest.discover import account_state
from iam_audit.ingest.extract import DATASETS
from iam_audit.ingest.load import (
    STAGING_TABLES,
    PreparedAccount,
    SnapshotMissing,
    changed_since_live_load,
    load_failed,
    prepare_account,
    record_digest_rows,
    recorded_digests,
    sha256,
    write_accounts_with_retry,
)
from iam_audit.ingest.raw_store import RawObjectMissing, RawStoreError

log = logging.getLogger(__name__)


class LoadError(RuntimeError):
    """Accounts (or the organisation list) could not be loaded; the checks still run and say error for them."""


@dataclass
class LoadReport:
    loaded: dict[str, int] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    organization_sha256: set[str] = field(default_factory=set)  # as the loaded manifests record it


def load_date(store, prefix: str, snapshot_date, accounts: list[dict], connect: Callable, *, mode: str,
              run_id: str | None, full_run: bool, max_account_drop_percent: float,
              allow_unhashed: bool = False) -> tuple[LoadReport, AccountSetShrink | None]:
    """Everything the date's staging holds, written while this run holds the date: another run of the
    same date (scheduler, make run, a backfill) must not write in between. `full_run` (live, no trigger
    subset): accounts no longer audited are pruned, unless the set shrank sharply (returned, nothing pruned)."""
    from iam_audit.database import snapshot_date_lock
    from iam_audit.ingest.account_tags import load_account_tags
    from iam_audit.ingest.organization import load_organization_facts

    with snapshot_date_lock(connect, snapshot_date):
        shrink = None
        if full_run:
            keep = [a["account_id"] for a in accounts]
            shrink = account_set_shrink(snapshot_date, keep, connect, max_account_drop_percent)
            if shrink:
                log.error("%s", shrink.message(max_account_drop_percent))  # loaded, failed at the end, not pruned
            else:
                prune_other_accounts(snapshot_date, keep, connect)
        load_organization_facts(store, prefix, snapshot_date, connect)
        # after the organisation's data sets, which replace the date's organization_datasets rows
        load_account_tags(store, prefix, snapshot_date, connect)
        report = load_snapshot(store, prefix, snapshot_date, accounts, connect, mode=mode, run_id=run_id,
                               allow_unhashed=allow_unhashed)
        # after the accounts: their manifests record the organisation list's SHA-256
        load_organization(store, prefix, snapshot_date, connect, mode=mode,
                          manifest_hashes=report.organization_sha256, run_id=run_id)
    analyze_staging(connect)
    return report, shrink


def analyze_staging(connect: Callable) -> None:
    """Fresh planner statistics on the staging tables after a bulk load: with stale ones, the checks'
    joins against a freshly loaded date are planned as if it were empty (docs/performance.md, change D).
    aws_policy_results is a view now; autovacuum keeps the history tables' statistics."""
    conn = connect()
    try:
        conn.autocommit = True
        conn.execute("ANALYZE " + ", ".join(f"iam_stage.{t}" for t in STAGING_TABLES))
    finally:
        conn.close()


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
    return PreparedAccount(
        account_id=account["account_id"],
        account_name=account.get("account_name"),
        extracted_at=datetime.now(UTC).isoformat(),
        run_id=run_id,
        raw_prefix="",
        status_rows=[(d, "error", "NoSnapshot", reason, None) for d in DATASETS],
        tables={},
    )
