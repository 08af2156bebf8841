"""Write one account's extracted data sets to the raw store, manifest last."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from iam_audit.ingest import layout
from iam_audit.ingest.extract import DatasetResult


def write_account_snapshot(store, prefix: str, snapshot_date, account_id: str, account_name: str | None,
                           results: dict[str, DatasetResult], run_id: str | None,
                           extracted_at: datetime, organization_sha256: str | None = None) -> dict:
    """Upload every collected data set, then the manifest; returns the manifest.

    The manifest is first overwritten with an 'incomplete' marker, so a failure
    half-way leaves no usable manifest and the loader loads nothing of this account
    for the date. (Overwriting rather than deleting keeps the writer PutObject-only.)
    The manifest records the SHA-256 of every object it lists; load and replay verify it.
    """
    manifest_key = layout.manifest_key(prefix, snapshot_date, account_id)
    store.put(manifest_key, json.dumps({"format": 1, "account_id": account_id, "incomplete": True}).encode())
    datasets = {}
    for name, result in results.items():
        entry = {"status": result.status}
        if result.ok:
            key = layout.dataset_key(prefix, snapshot_date, account_id, name)
            blob = layout.encode(result.payload)
            store.put(key, blob)
            entry["key"] = key
            entry["sha256"] = hashlib.sha256(blob).hexdigest()
        else:
            entry["error_code"] = result.error_code
            entry["error_message"] = (result.error_message or "")[:2000]
        datasets[name] = entry
    manifest = {
        "format": 2,
        "account_id": account_id,
        "account_name": account_name,
        "snapshot_date": str(snapshot_date),
        "extracted_at": extracted_at.isoformat(),
        "run_id": run_id,
        "datasets": datasets,
    }
    if organization_sha256:
        # the organisation's account list (trust checks use it) written by discover_accounts
        manifest["organization"] = {"key": layout.organization_key(prefix, snapshot_date),
                                    "sha256": organization_sha256}
    store.put(manifest_key, json.dumps(manifest, sort_keys=True, indent=1).encode("utf-8"))
    return manifest
