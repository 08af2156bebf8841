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
import os
import zlib
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


def max_object_bytes() -> int:
    """The most bytes one raw object may hold, compressed or decompressed (IAM_AUDIT_MAX_OBJECT_MIB, default 1024).

    A gzip bomb (a few MiB that inflate to many GiB) must fail as that object's error, not exhaust the
    load task's memory. The default leaves room for GetAccountAuthorizationDetails of accounts that use
    large AWS-managed policies with every version listed (docs/performance.md)."""
    raw = os.environ.get("IAM_AUDIT_MAX_OBJECT_MIB", "").strip()
    mib = int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_OBJECT_MIB
    return mib * 1024 * 1024


DEFAULT_MAX_OBJECT_MIB = 1024


def decode(blob: bytes, where: str, max_bytes: int | None = None):
    """Decode a raw object; raises CorruptObjectError naming `where` (s3://bucket/key), also when it
    decompresses to more than `max_bytes` (max_object_bytes() by default)."""
    limit = max_bytes or max_object_bytes()
    try:
        # wbits 31: a gzip member; max_length stops inflating at the cap instead of after the damage
        inflater = zlib.decompressobj(wbits=31)
        data = inflater.decompress(blob, limit + 1)
        if len(data) > limit:
            raise ObjectTooLarge(f"{where} decompresses to more than {limit // (1024 * 1024)} MiB "
                                 "(IAM_AUDIT_MAX_OBJECT_MIB): refused as a possible gzip bomb")
        if not inflater.eof:
            raise EOFError("compressed data ended before the end-of-stream marker")
        if inflater.unused_data.strip(b"\0"):
            raise OSError("trailing data after the gzip member")
        return json.loads(data)
    except ObjectTooLarge:
        raise
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise CorruptObjectError(f"{where} is corrupt or truncated: {exc}") from None


class CorruptObjectError(ValueError):
    pass


class ObjectTooLarge(CorruptObjectError):
    """A raw object larger than the load accepts."""
