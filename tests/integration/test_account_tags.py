"""Account tags for alert routing: read from Organizations (the emulator), stored in S3, staged."""

from __future__ import annotations

import boto3

from iam_audit.aws import AwsTarget
from iam_audit.ingest.account_tags import list_account_tags, load_account_tags, store_account_tags, tags_key
from iam_audit.ingest.discover import list_organization_accounts
from iam_audit.ingest.raw_store import S3RawStore
from tests.integration.conftest import KEY_ID, SECRET

SNAPSHOT = "2026-11-20"


def target(emulator) -> AwsTarget:
    return AwsTarget(session=boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                           region_name="us-east-1"), endpoint_url=emulator.url, max_attempts=2)


def test_tags_are_read_stored_and_staged(emulator, bucket, postgres, database):
    from iam_audit.database import apply_schema

    organizations = target(emulator).client("organizations")
    accounts = list_organization_accounts(target(emulator))
    tagged = accounts[1]["Id"]
    organizations.tag_resource(ResourceId=tagged, Tags=[{"Key": "security-contact", "Value": "team@example.com"},
                                                        {"Key": "env", "Value": "production"}])
    try:
        tags = list_account_tags(target(emulator), [a["Id"] for a in accounts])
        assert tags[tagged] == {"security-contact": "team@example.com", "env": "production"}
        assert set(tags) == {a["Id"] for a in accounts}
        store = S3RawStore(bucket)
        assert store_account_tags(target(emulator), store, "iam", SNAPSHOT, accounts) >= 2
        assert store.get(tags_key("iam", SNAPSHOT))
        with postgres.connect(database) as conn:
            apply_schema(conn)
        assert load_account_tags(store, "iam", SNAPSHOT, lambda: postgres.connect(database)) >= 2
        with postgres.connect(database) as conn:
            rows = conn.execute("SELECT account_id, key, value FROM iam_stage.account_tags "
                                "WHERE snapshot_date = %s AND account_id = %s ORDER BY key",
                                (SNAPSHOT, tagged)).fetchall()
        assert rows == [(tagged, "env", "production"), (tagged, "security-contact", "team@example.com")]
        # a date without stored tags (recorded before tags were read) stages nothing and is no error
        assert load_account_tags(store, "iam", "2026-11-19", lambda: postgres.connect(database)) is None
        # account_tags is a data set checks may need: its status says whether the tags were read
        with postgres.connect(database) as conn:
            status = dict(conn.execute("SELECT snapshot_date::text, status FROM iam_stage.organization_datasets "
                                       "WHERE dataset = 'account_tags'").fetchall())
        assert status == {str(SNAPSHOT): "ok", "2026-11-19": "error"}
    finally:
        organizations.untag_resource(ResourceId=tagged, TagKeys=["security-contact", "env"])


def test_tags_refused_route_without_them(emulator):
    emulator.set_faults([{"service": "organizations", "action": "ListTagsForResource",
                          "error": "AccessDeniedException"}])
    accounts = list_organization_accounts(target(emulator))
    assert list_account_tags(target(emulator), [a["Id"] for a in accounts]) is None
