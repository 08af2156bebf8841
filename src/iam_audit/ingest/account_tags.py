"""The organisation's account tags (Organizations ListTagsForResource), read during discovery, stored
beside the account list in S3 and staged in iam_stage.account_tags; alerts route by them."""

from __future__ import annotations

import logging
from collections.abc import Callable

from botocore.exceptions import ClientError

from iam_audit.aws import AwsTarget, error_code
from iam_audit.ingest import layout

log = logging.getLogger(__name__)
DENIED = {"AccessDeniedException", "AccessDenied"}


def tags_key(prefix: str, snapshot_date) -> str:
    return f"{prefix}/snapshot_date={snapshot_date}/organization/account_tags.json.gz"


def list_account_tags(target: AwsTarget, account_ids: list[str]) -> dict[str, dict[str, str]] | None:
    """{account id: {tag key: value}} for each account; None when the caller may not read tags (routing
    then falls back to Variable iam_audit_alert_routes and the default recipients: a warning, not a failure)."""
    client = target.client("organizations")
    paginator = client.get_paginator("list_tags_for_resource")
    tags: dict[str, dict[str, str]] = {}
    for account_id in account_ids:
        try:
            tags[account_id] = {t["Key"]: t["Value"] for page in paginator.paginate(ResourceId=account_id)
                                for t in page.get("Tags", [])}
        except ClientError as exc:
            if error_code(exc) in DENIED:
                log.warning("organizations:ListTagsForResource was refused (%s): alerts are routed without "
                            "account tags; add it to the pipeline's discovery policy", error_code(exc))
                return None
            raise
    return tags


def store_account_tags(target: AwsTarget, store, prefix: str, snapshot_date, org_accounts: list[dict]) -> int | None:
    tags = list_account_tags(target, [a["Id"] for a in org_accounts])
    if tags is None:
        return None
    store.put(tags_key(prefix, snapshot_date), layout.encode(tags))
    return sum(map(len, tags.values()))


def load_account_tags(store, prefix: str, snapshot_date, connect: Callable) -> int | None:
    """Stage the snapshot's account tags, if they were stored (replays read the same object)."""
    from iam_audit.ingest.raw_store import RawObjectMissing

    key = tags_key(prefix, snapshot_date)
    try:
        tags = layout.decode(store.get(key), store.url(key))
        status = ("ok", None, None)
    except RawObjectMissing:
        tags, status = {}, ("error", "NotCollected", f"no account tags were stored at {store.url(key)} (tags "
                                                     "unreadable: organizations:ListTagsForResource refused)")
    conn = connect()
    try:
        with conn.transaction(), conn.cursor() as cur:
            # account_tags is a data set checks may need (iam_audit_account_readiness): its status says
            # whether an account without tags has none or whether they could not be read
            cur.execute(
                "INSERT INTO iam_stage.organization_datasets (snapshot_date, dataset, status, error_code, "
                "error_message, collected_at) VALUES (%s, 'account_tags', %s, %s, %s, now()) "
                "ON CONFLICT (snapshot_date, dataset) DO UPDATE SET status = EXCLUDED.status, "
                "error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message, "
                "collected_at = EXCLUDED.collected_at", (str(snapshot_date), *status))
            cur.execute("DELETE FROM iam_stage.account_tags WHERE snapshot_date = %s", (str(snapshot_date),))
            with cur.copy("COPY iam_stage.account_tags (snapshot_date, account_id, key, value) FROM STDIN") as copy:
                for account_id, pairs in sorted(tags.items()):
                    for key_, value in sorted(pairs.items()):
                        copy.write_row((str(snapshot_date), account_id, key_, value))
    finally:
        conn.close()
    return sum(map(len, tags.values())) if status[0] == "ok" else None
