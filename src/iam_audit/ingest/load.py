"""Load: one account's raw snapshot from S3 into the staging tables with COPY.

Everything is read, checked (manifest layout, SHA-256 of each object) and transformed
before the database is touched; the account's rows for the date are then replaced in
one transaction. An account whose snapshot cannot be loaded is recorded as such
(iam_stage.accounts.load_error), so every check writes 'error' verdicts for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass

import psycopg
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from iam_audit.ingest import layout, transform
from iam_audit.ingest.datasets import COLUMNS

log = logging.getLogger(__name__)

# every staging table a load replaces: the two of every account, then the data sets' (registry order)
STAGING_TABLES = ("accounts", "extraction_status", *COLUMNS)


class SnapshotMissing(LookupError):
    """No complete raw snapshot (manifest) for an account and date."""


class ChecksumMismatch(layout.CorruptObjectError):
    """A raw object's SHA-256 differs from the one its manifest recorded."""


class ManifestChanged(ChecksumMismatch):
    """A manifest's SHA-256 differs from the one the live load recorded in PostgreSQL."""


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def changed_since_live_load(url: str, recorded: str, read: str, snapshot_date) -> str:
    return (f"{url} differs from the object the live load of {snapshot_date} read (SHA-256 recorded in "
            f"iam_audit_evidence_digests {recorded}, read {read}): the evidence was rewritten after it was "
            "loaded; restore the earlier object version (S3 Versioning) to replay it")


# at most this many objects in one account's folder: its data sets and the manifest (a flood of
# objects there must not exhaust the task listing them)
def max_objects_per_account() -> int:
    from iam_audit.ingest.datasets import NAMES as DATASETS

    return len(DATASETS) + 1


# Manifests of format 1 (written before checksums were recorded) carry no sha256; from
# format 2 on every collected data set must have one.
CHECKSUM_FORMAT = 2
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")


@dataclass
class PreparedAccount:
    account_id: str
    account_name: str | None
    extracted_at: str
    run_id: str | None
    raw_prefix: str
    status_rows: list[tuple]
    tables: dict[str, list[tuple]]
    load_error: str | None = None
    manifest_url: str | None = None
    manifest_sha256: str | None = None       # of the manifest's bytes as read
    organization_sha256: str | None = None   # of organization/accounts.json.gz, as the manifest records it

    @property
    def row_count(self) -> int:
        return sum(len(rows) for rows in self.tables.values())


def prepare_account(store, prefix: str, snapshot_date, account_id: str,
                    written_by_run: str | None = None, recorded_manifest_sha256: str | None = None,
                    allow_unhashed: bool = False) -> PreparedAccount:
    """Read and transform an account's snapshot. Raises SnapshotMissing or CorruptObjectError.

    written_by_run: in a live run, only a snapshot written by this run counts; an older
    one of the same date means this run's extraction did not complete.
    """
    from iam_audit.ingest.raw_store import RawObjectMissing

    manifest_key = layout.manifest_key(prefix, snapshot_date, account_id)
    try:
        manifest_blob = store.get(manifest_key)
        manifest = json.loads(manifest_blob)
    except RawObjectMissing:
        raise SnapshotMissing(
            f"no raw snapshot of account {account_id} for {snapshot_date} "
            f"({store.url(manifest_key)} does not exist)"
        ) from None
    except ValueError as exc:
        raise layout.CorruptObjectError(f"{store.url(manifest_key)} is corrupt: {exc}") from None
    if written_by_run and not manifest.get("incomplete") and manifest.get("run_id") != written_by_run:
        raise SnapshotMissing(
            f"the raw snapshot of account {account_id} for {snapshot_date} was written by run "
            f"{manifest.get('run_id')}, not by this run: this run's extraction did not write one"
        )
    if manifest.get("incomplete"):
        raise SnapshotMissing(
            f"the raw snapshot of account {account_id} for {snapshot_date} is incomplete: its extraction "
            f"stopped while writing ({store.url(manifest_key)} is an 'incomplete' marker)"
        )

    manifest_sha256 = sha256(manifest_blob)
    if recorded_manifest_sha256 is not None and recorded_manifest_sha256 != manifest_sha256:
        raise ManifestChanged(changed_since_live_load(store.url(manifest_key), recorded_manifest_sha256,
                                                      manifest_sha256, snapshot_date))
    _check_manifest(manifest, store.url(manifest_key), prefix, snapshot_date, account_id, allow_unhashed)
    payloads = {}
    for dataset, entry in manifest["datasets"].items():
        if entry["status"] == "ok":
            key = entry["key"]
            try:
                blob = store.get(key)
            except RawObjectMissing:
                raise layout.CorruptObjectError(
                    f"{store.url(key)} is listed in {store.url(manifest_key)} but does not exist") from None
            expected = entry.get("sha256")
            if expected is not None and hashlib.sha256(blob).hexdigest() != expected:
                raise ChecksumMismatch(
                    f"{store.url(key)} does not match the SHA-256 recorded in {store.url(manifest_key)} "
                    f"(recorded {expected}, read {hashlib.sha256(blob).hexdigest()}): the object was changed "
                    "or replaced after extraction")
            payloads[dataset] = layout.decode(blob, store.url(key))

    tables: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
    status_rows = []
    for dataset, entry in manifest["datasets"].items():
        if entry["status"] == "ok":
            try:
                produced = transform.transform_dataset(dataset, payloads[dataset], account_id, payloads)
            except transform.MalformedPayload as exc:
                # collected but not understood: the data set is unusable, so the checks that
                # need it give 'error' naming the field, and the other data sets still load
                log.warning("account %s: %s", account_id, exc)
                status_rows.append((dataset, "error", "MalformedPayload",
                                    f"{exc.detail} (in {store.url(entry['key'])})", None))
                continue
            except Exception as exc:  # noqa: BLE001 - any unexpected shape fails this account, not the load
                raise layout.CorruptObjectError(
                    f"{store.url(entry['key'])} does not have the expected shape for {dataset}: {exc!r}"
                ) from None
            for table, rows in produced.items():
                tables[table].extend(rows)
            count = sum(len(r) for r in produced.values())
            status_rows.append((dataset, "ok", None, None, count))
        else:
            status_rows.append((dataset, "error", entry.get("error_code"), entry.get("error_message"), None))
    return PreparedAccount(
        account_id=account_id,
        account_name=manifest.get("account_name"),
        extracted_at=manifest["extracted_at"],
        run_id=manifest.get("run_id"),
        raw_prefix=store.url(layout.account_prefix(prefix, snapshot_date, account_id)),
        status_rows=status_rows,
        tables=tables,
        manifest_url=store.url(manifest_key),
        manifest_sha256=manifest_sha256,
        organization_sha256=(manifest.get("organization") or {}).get("sha256"),
    )


def _check_manifest(manifest, where: str, prefix: str, snapshot_date, account_id: str,
                    allow_unhashed: bool = False) -> None:
    """The manifest must describe this account and date and list only this account's own objects."""
    from iam_audit.ingest.datasets import NAMES as DATASETS

    if not isinstance(manifest, dict) or not isinstance(manifest.get("datasets"), dict):
        raise layout.CorruptObjectError(f"{where} is not a snapshot manifest (no 'datasets' object)")
    if manifest.get("account_id") != account_id:
        raise layout.CorruptObjectError(
            f"{where} describes account {manifest.get('account_id')!r}, not {account_id}: stray manifest")
    if manifest.get("snapshot_date") not in (None, str(snapshot_date)):
        raise layout.CorruptObjectError(
            f"{where} describes snapshot {manifest.get('snapshot_date')!r}, not {snapshot_date}: stray manifest")
    if "extracted_at" not in manifest:
        raise layout.CorruptObjectError(f"{where} has no extracted_at")
    try:
        manifest_format = int(manifest.get("format") or 1)
    except (TypeError, ValueError):
        raise layout.CorruptObjectError(f"{where}: format {manifest.get('format')!r} is not a number") from None
    if manifest_format < CHECKSUM_FORMAT and not allow_unhashed:
        # A downgrade to format 1 would otherwise switch the checksum check off for edited objects.
        raise layout.CorruptObjectError(
            f"{where} is a manifest of format {manifest_format}, which records no SHA-256 of its objects: "
            "refused, since its objects cannot be verified. If it was written before checksums existed and "
            "you trust it, set the Variable iam_audit_allow_unhashed_manifests to true for the replay")
    checksums_required = manifest_format >= CHECKSUM_FORMAT
    organization = manifest.get("organization")
    if organization is not None and not (isinstance(organization, dict)
                                         and isinstance(organization.get("sha256"), str)):
        raise layout.CorruptObjectError(f"{where}: 'organization' has no SHA-256")
    for dataset, entry in manifest["datasets"].items():
        if dataset not in DATASETS:
            raise layout.CorruptObjectError(f"{where} lists an unknown data set {dataset!r}")
        if not isinstance(entry, dict) or entry.get("status") not in ("ok", "error"):
            raise layout.CorruptObjectError(f"{where}: the entry of {dataset} has no status 'ok' or 'error'")
        if entry["status"] != "ok":
            continue
        expected = layout.dataset_key(prefix, snapshot_date, account_id, dataset)
        if entry.get("key") != expected:
            raise layout.CorruptObjectError(
                f"{where}: {dataset} points at {entry.get('key')!r}, not at {expected}: stray key")
        if checksums_required and not isinstance(entry.get("sha256"), str):
            raise layout.CorruptObjectError(f"{where}: {dataset} has no SHA-256 (manifest format "
                                            f"{manifest.get('format')} requires one)")


def load_failed(account_id: str, account_name: str | None, reason: str, run_id: str | None,
                extracted_at: str) -> PreparedAccount:
    """The staging record of an account whose snapshot could not be loaded: no data, and a
    load_error that iam_audit_account_readiness reports, so every check says 'error'."""
    return PreparedAccount(account_id=account_id, account_name=account_name, extracted_at=extracted_at,
                           run_id=run_id, raw_prefix="", status_rows=[], tables={},
                           load_error=reason[:4000] or "unknown load failure")


def write_accounts(conn, snapshot_date, batch: list[PreparedAccount], record_digests: bool = False) -> None:
    """Replace the staging rows of the date of every account of the batch, in one transaction.

    Each account is all-or-nothing: a failure rolls the whole batch back (and it is retried),
    so no account is ever half-written. One DELETE and one COPY per table for the batch keep
    the load close to raw COPY speed (docs/performance.md).
    """
    if not batch:
        return
    snapshot_date = str(snapshot_date)
    ids = [p.account_id for p in batch]
    with conn.transaction(), conn.cursor() as cur:
        for table in STAGING_TABLES:
            cur.execute(
                f"DELETE FROM iam_stage.{table} WHERE snapshot_date = %s AND account_id = ANY(%s)",  # noqa: S608
                (snapshot_date, ids),
            )
        _copy(cur, "accounts", ("account_name", "extracted_at", "run_id", "raw_prefix", "load_error"),
              snapshot_date,
              ((p.account_id, (p.account_name, p.extracted_at, p.run_id, p.raw_prefix, p.load_error))
               for p in batch))
        _copy(cur, "extraction_status", ("dataset", "status", "error_code", "error_message", "row_count"),
              snapshot_date, ((p.account_id, row) for p in batch for row in p.status_rows))
        for table, columns in COLUMNS.items():
            if any(p.tables.get(table) for p in batch):
                _copy(cur, table, columns, snapshot_date,
                      ((p.account_id, row) for p in batch for row in p.tables.get(table, ())))
        if record_digests:
            record_digest_rows(cur, snapshot_date, [(p.manifest_url, p.manifest_sha256, p.run_id)
                                                    for p in batch if p.manifest_sha256])


def record_digest_rows(cur, snapshot_date, rows: list[tuple[str, str, str | None]]) -> None:
    """(object_url, sha256, run_id) of objects a live load read: what later replays must find again."""
    if rows:
        cur.executemany(
            "INSERT INTO iam_audit_evidence_digests (snapshot_date, object_url, sha256, run_id) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (snapshot_date, object_url) DO UPDATE "
            "SET sha256 = EXCLUDED.sha256, run_id = EXCLUDED.run_id, recorded_at = now()",
            [(str(snapshot_date), url, digest, run_id) for url, digest, run_id in rows])


def recorded_digests(conn, snapshot_date) -> dict[str, str]:
    """object_url -> SHA-256 recorded by the live loads of the date."""
    with conn.cursor() as cur:
        cur.execute("SELECT object_url, sha256 FROM iam_audit_evidence_digests WHERE snapshot_date = %s",
                    (str(snapshot_date),))
        return dict(cur.fetchall())


def write_account(conn, snapshot_date, prepared: PreparedAccount) -> None:
    """Replace one account's staging rows for the date, in one transaction."""
    write_accounts(conn, snapshot_date, [prepared])


def _copy(cur, table: str, columns: tuple[str, ...], snapshot_date: str, rows) -> None:
    column_list = ", ".join(("snapshot_date", "account_id") + columns)
    with cur.copy(f"COPY iam_stage.{table} ({column_list}) FROM STDIN") as copy:
        for account_id, row in rows:
            copy.write_row((snapshot_date, account_id) + row)


@retry(
    retry=retry_if_exception_type(psycopg.OperationalError),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.5, max=5),
    reraise=True,
)
def write_accounts_with_retry(connect, snapshot_date, batch: list[PreparedAccount],
                              record_digests: bool = False) -> None:
    """Write on a fresh connection; a dropped connection rolls the batch back and it is retried."""
    conn = connect()
    try:
        write_accounts(conn, snapshot_date, batch, record_digests=record_digests)
    finally:
        conn.close()
