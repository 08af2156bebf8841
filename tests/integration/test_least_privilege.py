"""The pipeline's S3 calls under the shipped policies, enforced by the emulator (IAM conditions and Deny)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError

from iam_audit.evaluate.policies import load_policy
from iam_audit.ingest.raw_store import S3RawStore
from tests.old_policies import old_reader

KEY_ID, SECRET = "AKIALEASTPRIVILEGE01", "least-privilege-test-secret"
PREFIX = "iam"


@pytest.fixture()
def bucket(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET,
        "extra": {"endpoint_url": emulator.url, "region_name": "us-east-1"}}))
    name = f"lp-{datetime.now(UTC).strftime('%H%M%S%f')}"
    s3(emulator).create_bucket(Bucket=name)
    yield name
    emulator.clear_enforcement()


def s3(emulator):
    return boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)


def owner(emulator) -> str:
    return boto3.client("sts", endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                        aws_secret_access_key=SECRET).get_caller_identity()["Account"]


def enforce(emulator, bucket, reader: dict | None = None):
    values = {"Bucket": bucket, "Prefix": PREFIX, "BucketOwnerAccountId": owner(emulator)}
    reader = reader or load_policy("s3-raw-reader.json", **values)
    emulator.enforce([{"access_key": KEY_ID, "policies": [reader, load_policy("s3-raw-writer.json", **values)]}])


def test_bucket_check_passes_under_the_shipped_reader_policy(emulator, bucket):
    store = S3RawStore(bucket)
    enforce(emulator, bucket)
    assert store.check_readable(PREFIX) is None, emulator.refused()
    # HeadBucket (S3Hook.check_for_bucket) is authorised as s3:ListBucket without s3:prefix: refused
    assert store.hook.check_for_bucket(bucket) is False
    refused = emulator.refused()
    expected = [("s3:ListBucket", {"s3:ResourceAccount": owner(emulator)})]
    assert [(r["action"], r["context"]) for r in refused] == expected
    store.put(f"{PREFIX}/snapshot_date=2026-11-01/x.json", b"{}")
    assert store.get(f"{PREFIX}/snapshot_date=2026-11-01/x.json") == b"{}"


def test_the_old_reader_policy_refused_head_bucket(emulator, bucket):
    """The earlier check (HeadBucket) under the reader policy shipped then: refused."""
    enforce(emulator, bucket, reader=old_reader(bucket, PREFIX))
    assert S3RawStore(bucket).hook.check_for_bucket(bucket) is False
    # and it let the reader list the whole bucket, which the shipped policy no longer does
    s3(emulator).list_objects_v2(Bucket=bucket, Prefix="")
    enforce(emulator, bucket)
    with pytest.raises(ClientError) as denied:
        s3(emulator).list_objects_v2(Bucket=bucket, Prefix="")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


def test_denied_listing_and_missing_bucket_say_what_to_fix(emulator, bucket):
    enforce(emulator, bucket)
    why = S3RawStore(bucket).check_readable("other-prefix")
    assert "s3:ListBucket" in why and "s3:prefix other-prefix/*" in why and "s3-raw-reader.json" in why
    emulator.clear_enforcement()
    assert "does not exist" in S3RawStore("no-such-bucket-lp").check_readable(PREFIX)


def test_unencrypted_put_is_denied_explicitly(emulator, bucket):
    enforce(emulator, bucket)
    client = s3(emulator)
    with pytest.raises(ClientError) as denied:
        client.put_object(Bucket=bucket, Key=f"{PREFIX}/plain", Body=b"x")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert emulator.refused()[-1]["decision"] == "ExplicitDeny"
    client.put_object(Bucket=bucket, Key=f"{PREFIX}/sealed", Body=b"x", ServerSideEncryption="AES256")
    with pytest.raises(ClientError):
        client.put_object(Bucket=bucket, Key="elsewhere/sealed", Body=b"x", ServerSideEncryption="AES256")


def test_every_s3_call_names_the_expected_bucket_owner(emulator, bucket):
    """S3 answers 403 when ExpectedBucketOwner is not the bucket's owner: a store expecting another
    account is refused on each call it makes, and the default (the credentials' account) is allowed."""
    from iam_audit.ingest.raw_store import RawStoreError

    store = S3RawStore(bucket)
    assert store.expected_owner == owner(emulator)
    store.put(f"{PREFIX}/a.json", b"{}")
    assert store.get(f"{PREFIX}/a.json") == b"{}" and store.list_keys(f"{PREFIX}/", 10) == [f"{PREFIX}/a.json"]
    elsewhere = S3RawStore(bucket, expected_owner="999988887777")
    why = elsewhere.check_readable(PREFIX)
    assert why and "not owned by account 999988887777" in why
    with pytest.raises(RawStoreError, match="AccessDenied"):
        elsewhere.put(f"{PREFIX}/b.json", b"{}")
    with pytest.raises(RawStoreError, match="AccessDenied"):
        elsewhere.get(f"{PREFIX}/a.json")
    with pytest.raises(RawStoreError, match="AccessDenied"):
        elsewhere.list_keys(f"{PREFIX}/", 10)
    # and the shipped policies' s3:ResourceAccount condition names the same account
    enforce(emulator, bucket)
    assert store.check_readable(PREFIX) is None, emulator.refused()
    checked = [r for r in emulator.requests() if r["action"] in ("s3:GetObject", "s3:PutObject", "s3:ListBucket")]
    assert checked and all(r["context"].get("s3:ResourceAccount") == owner(emulator) for r in checked), checked
