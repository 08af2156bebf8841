"""S3 and database faults around the raw store and the staging load: real S3 API (emulator over HTTP),
real PostgreSQL (pg_terminate_backend), real extraction and loading code."""

from __future__ import annotations

import gzip
import json

import boto3
import pytest

from iam_audit.aws import AwsTarget
from iam_audit.config import AuditConfig
from iam_audit.ingest import layout
from iam_audit.ingest.extract_accounts import extract_one
from iam_audit.ingest.raw_store import RawStoreError, S3RawStore
from iam_audit.ingest.staging import load_snapshot
from tests.conftest import account_of
from tests.integration.conftest import KEY_ID, SECRET, s3

SNAPSHOT = "2026-11-01"


def target(emulator) -> AwsTarget:
    return AwsTarget(session=boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                           region_name="us-east-1"), endpoint_url=emulator.url, max_attempts=2)


def extract(emulator, bucket, account_id, run_id):
    config = AuditConfig(bucket=bucket)
    return extract_one(target(emulator), config, S3RawStore(bucket), SNAPSHOT,
                       {"account_id": account_id, "account_name": "x"}, run_id)


def connect_to(postgres, database):
    return lambda: postgres.connect(database)


def staged_users(db, account_id) -> int:
    return db.execute("SELECT count(*) FROM iam_stage.users WHERE snapshot_date = %s AND account_id = %s",
                      (SNAPSHOT, account_id)).fetchone()[0]


def test_transient_put_failures_are_retried(emulator, bucket):
    account_id = account_of(emulator.manifest, "weak")
    emulator.set_faults([{"service": "s3", "action": "PutObject", "error": "ServiceUnavailable", "times": 2}])
    summary = extract(emulator, bucket, account_id, "run-transient")
    assert summary["datasets_ok"] == len(layout_datasets())
    manifest = json.loads(s3(emulator).get_object(Bucket=bucket, Key=summary["manifest_key"])["Body"].read())
    assert manifest["run_id"] == "run-transient" and not manifest.get("incomplete")


def layout_datasets():
    from iam_audit.ingest.extract import DATASETS

    return DATASETS


def test_permanent_put_failure_names_the_key_and_loads_nothing(emulator, bucket, db, postgres, database):
    account_id = account_of(emulator.manifest, "weak")
    extract(emulator, bucket, account_id, "run-ok")  # an earlier complete snapshot of the same date
    emulator.set_faults([{"service": "s3", "action": "PutObject", "error": "AccessDenied"}])
    with pytest.raises(RawStoreError) as err:
        extract(emulator, bucket, account_id, "run-denied")
    assert f"s3://{bucket}/iam/snapshot_date={SNAPSHOT}/account_id={account_id}/" in str(err.value)
    assert "AccessDenied" in str(err.value)
    emulator.clear_faults()
    report = load_snapshot(S3RawStore(bucket), "iam", SNAPSHOT, [{"account_id": account_id}],
                           connect_to(postgres, database), mode="live", run_id="run-denied")
    assert account_id in report.missing and "not by this run" in report.missing[account_id]
    assert staged_users(db, account_id) == 0  # no data of the account for the date
    statuses = db.execute("SELECT DISTINCT status, error_code FROM iam_stage.extraction_status "
                          "WHERE snapshot_date = %s AND account_id = %s", (SNAPSHOT, account_id)).fetchall()
    assert statuses == [("error", "NoSnapshot")]  # its checks will say error, not pass


def test_raw_objects_can_use_kms(emulator, bucket):
    key_id = boto3.client("kms", endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                          aws_secret_access_key=SECRET).create_key()["KeyMetadata"]["KeyId"]
    store = S3RawStore(bucket, kms_key_id=key_id)
    store.put("iam/x.json.gz", layout.encode({"a": 1}))
    head = s3(emulator).head_object(Bucket=bucket, Key="iam/x.json.gz")
    assert head["ServerSideEncryption"] == "aws:kms" and key_id in head["SSEKMSKeyId"]


def test_objects_over_8_mib_are_one_encrypted_put_under_the_writer_deny(emulator, bucket):
    """The writer policy denies s3:PutObject without the SSE header; a multipart upload's UploadPart
    never carries it, so a large GetAccountAuthorizationDetails object must go in one PutObject."""
    import os

    emulator.deny_unencrypted_puts(bucket)
    with pytest.raises(Exception, match="AccessDenied"):
        s3(emulator).put_object(Bucket=bucket, Key="iam/plain.json", Body=b"{}")
    data = os.urandom(9 * 1024 * 1024)
    S3RawStore(bucket).put("iam/big.json.gz", data)
    assert s3(emulator).get_object(Bucket=bucket, Key="iam/big.json.gz")["Body"].read() == data
    assert s3(emulator).head_object(Bucket=bucket, Key="iam/big.json.gz")["ServerSideEncryption"] == "AES256"
    s3_actions = {c["action"] for c in emulator.calls() if c["service"] == "s3"}
    assert "UploadPart" not in s3_actions and "CreateMultipartUpload" not in s3_actions


def test_corrupt_object_fails_that_account_only(emulator, bucket, db, postgres, database):
    weak, strong = account_of(emulator.manifest, "weak"), account_of(emulator.manifest, "strong")
    for account_id in (weak, strong):
        extract(emulator, bucket, account_id, "run-1")
    store = S3RawStore(bucket)
    load_snapshot(store, "iam", SNAPSHOT, [{"account_id": weak}, {"account_id": strong}],
                  connect_to(postgres, database), mode="live", run_id="run-1")
    before = staged_users(db, weak)
    assert before > 0
    key = layout.dataset_key("iam", SNAPSHOT, weak, "authorization_details")
    blob = s3(emulator).get_object(Bucket=bucket, Key=key)["Body"].read()
    s3(emulator).put_object(Bucket=bucket, Key=key, Body=blob[: len(blob) // 2])  # truncated
    db.execute("DELETE FROM iam_stage.users WHERE snapshot_date = %s AND account_id = %s", (SNAPSHOT, strong))
    db.commit()
    report = load_snapshot(store, "iam", SNAPSHOT, [{"account_id": weak}, {"account_id": strong}],
                           connect_to(postgres, database), mode="live", run_id="run-1")
    assert f"s3://{bucket}/{key}" in report.failed[weak] and "SHA-256" in report.failed[weak]
    # the account's rows of the date are replaced by a load failure record: its checks say error
    assert staged_users(db, weak) == 0
    (load_error,) = db.execute("SELECT load_error FROM iam_stage.accounts WHERE snapshot_date = %s "
                               "AND account_id = %s", (SNAPSHOT, weak)).fetchone()
    assert f"s3://{bucket}/{key}" in load_error
    assert strong in report.loaded and staged_users(db, strong) > 0


def test_connection_killed_mid_load_rolls_back_and_retries(emulator, bucket, db, postgres, database):
    account_id = account_of(emulator.manifest, "weak")
    extract(emulator, bucket, account_id, "run-1")
    store = S3RawStore(bucket)
    load_snapshot(store, "iam", SNAPSHOT, [{"account_id": account_id}], connect_to(postgres, database),
                  mode="live", run_id="run-1")
    expected = db.execute("SELECT count(*) FROM iam_stage.policy_attachments WHERE account_id = %s",
                          (account_id,)).fetchone()[0]
    # The first COPY into policy_attachments kills its own backend (pg_terminate_backend), once:
    # sequences are not rolled back, so the retry goes through.
    db.execute("""
        CREATE SEQUENCE kill_once;
        CREATE FUNCTION kill_during_copy() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('kill_once') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER kill_during_copy BEFORE INSERT ON iam_stage.policy_attachments
            FOR EACH ROW EXECUTE FUNCTION kill_during_copy();
    """)
    db.commit()
    report = load_snapshot(store, "iam", SNAPSHOT, [{"account_id": account_id}], connect_to(postgres, database),
                           mode="live", run_id="run-1")
    assert report.loaded and not report.failed
    assert db.execute("SELECT last_value FROM kill_once").fetchone()[0] > 1  # it fired, then the retry passed
    rows = db.execute("SELECT count(*), count(DISTINCT (entity_arn, policy_arn)) FROM iam_stage.policy_attachments "
                      "WHERE account_id = %s", (account_id,)).fetchone()
    assert rows == (expected, expected)  # nothing duplicated, nothing missing


def test_layout_decode_names_the_object():
    with pytest.raises(layout.CorruptObjectError, match="s3://b/k"):
        layout.decode(gzip.compress(b"{not json"), "s3://b/k")
