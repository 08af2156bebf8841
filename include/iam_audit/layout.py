"""The S3 key layout of raw snapshots.

    <prefix>/snapshot_date=YYYY-MM-DD/account_id=123456789012/<dataset>.json.gz
    <prefix>/snapshot_date=YYYY-MM-DD/account_id=123456789012/_manifest.json
    <prefix>/snapshot_date=YYYY-MM-DD/organization/accounts.json.gz

The manifest is written last: its presence means the account's snapshot is
complete, and it records per data set whether it was collected.
"""

from __future__ import annotations

import gzip
import json
from datetime import date, datetime

MANIFEST = "_manifest.json"


def account_prefix(prefix: str, snapshot_date: date | str, account_id: str) -> str:
    return f"{prefix}/snapshot_date={snapshot_date}/account_id={account_id}/"


def dataset_key(prefix: str, snapshot_date: date | str, account_id: str, dataset: str) -> str:
    return account_prefix(prefix, snapshot_date, account_id) + f"{dataset}.json.gz"


def organization_key(prefix: str, snapshot_date: date | str) -> str:
    """The organisation's account list as discovered for the snapshot."""
    return f"{prefix}/snapshot_date={snapshot_date}/organization/accounts.json.gz"


def manifest_key(prefix: str, snapshot_date: date | str, account_id: str) -> str:
    return account_prefix(prefix, snapshot_date, account_id) + MANIFEST


def _default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def encode(payload) -> bytes:
    # mtime=0 keeps the bytes identical for identical data (idempotent reruns). Level 6 (zlib's default)
    # instead of gzip's 9: about 5x less CPU on these JSON payloads for a few percent larger objects.
    return gzip.compress(json.dumps(payload, default=_default, sort_keys=True).encode("utf-8"), compresslevel=6,
                         mtime=0)


def decode(blob: bytes, where: str):
    """Decode a raw object; raises CorruptObjectError naming `where` (s3://bucket/key)."""
    try:
        return json.loads(gzip.decompress(blob))
    except (OSError, EOFError, ValueError) as exc:
        raise CorruptObjectError(f"{where} is corrupt or truncated: {exc}") from None


class CorruptObjectError(ValueError):
    pass
