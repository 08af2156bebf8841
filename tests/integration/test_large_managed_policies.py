"""GetAccountAuthorizationDetails of an account using AWS-managed policies with their whole version
history (AWS lists every version: ReadOnlyAccess has 190, about 9 MB of documents): the stored data set
keeps only the default version's document of AWS-managed policies, so the account loads under a
per-object cap far below the full response, its verdicts equal those of the same account with one
version, and the cap still refuses a gzip bomb."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import boto3
import pytest

from iam_audit.aws import AwsTarget
from iam_audit.config import AuditConfig
from iam_audit.database import run_check
from iam_audit.ingest import layout
from iam_audit.ingest.extract_accounts import extract_one
from iam_audit.ingest.raw_store import S3RawStore
from iam_audit.ingest.staging import load_snapshot

KEY_ID, SECRET = "AKIAMANAGEDVERSIONS1", "managed-versions-test-secret"
ONE_VERSION, ALL_VERSIONS = "2026-11-04", "2026-11-05"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
# the checks that read managed policies' documents
CHECKS = ("no_full_admin_policies", "hygiene_principal_escalation", "hygiene_privilege_escalation",
          "hygiene_service_wildcards", "hygiene_console_admin_without_mfa")


def _target(emulator) -> AwsTarget:
    return AwsTarget(session=boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                           region_name="us-east-1"), endpoint_url=emulator.url,
                     region_name="us-east-1", max_attempts=2)


@pytest.fixture()
def bucket(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET,
        "extra": {"endpoint_url": emulator.url, "region_name": "us-east-1"}}))
    name = f"mv-{datetime.now(UTC).strftime('%H%M%S%f')}"
    boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                 aws_secret_access_key=SECRET).create_bucket(Bucket=name)
    return name


@pytest.fixture()
def member(emulator):
    """A member account whose developers group holds ReadOnlyAccess; one version again afterwards."""
    account_id = next(a["id"] for a in emulator.manifest["accounts"]
                      if a["id"] != emulator.manifest["management_account_id"])
    yield account_id
    emulator.set_aws_managed_policy_versions(account_id, "ReadOnlyAccess", 1)


def _verdicts(db, account_id: str, snapshot: str) -> set[tuple]:
    for logic in CHECKS:
        run_check(db, logic, snapshot)
    rows = db.execute("SELECT framework, check_id, resource_id, status, reason FROM aws_policy_results "
                      "WHERE account_id = %s AND snapshot_date = %s", (account_id, snapshot)).fetchall()
    assert rows
    return set(rows)


def test_every_version_of_aws_managed_policies_loads_under_the_cap_with_the_same_verdicts(
        emulator, bucket, member, db, postgres, database, monkeypatch):
    store = S3RawStore(bucket)
    target = _target(emulator)
    account = {"account_id": member, "account_name": "member"}

    def extract_and_load(snapshot):
        summary = extract_one(target, AuditConfig(bucket=bucket), store, snapshot, account, f"run-{snapshot}")
        assert summary["datasets_failed"] == [], summary
        report = load_snapshot(store, "iam", snapshot, [{"account_id": member}], lambda: postgres.connect(database),
                               run_id=f"run-{snapshot}")
        assert not report.failed and not report.missing, report
        return _verdicts(db, member, snapshot)

    baseline = extract_and_load(ONE_VERSION)
    grown = emulator.set_aws_managed_policy_versions(member, "ReadOnlyAccess", 190)
    assert grown["versions"] == 190 and grown["document_bytes"] > 8 * 2**20
    # a cap of 1 MiB per object: the full response (every version's document) could not be loaded
    monkeypatch.setenv("IAM_AUDIT_MAX_OBJECT_MIB", "1")
    assert extract_and_load(ALL_VERSIONS) == {(f, c, r, s, reason) for f, c, r, s, reason in baseline}

    key = layout.dataset_key("iam", ALL_VERSIONS, member, "authorization_details")
    payload = layout.decode(store.get(key), key)
    (read_only,) = [p for p in payload["Policies"] if p["Arn"] == READ_ONLY]
    versions = read_only["PolicyVersionList"]
    assert len(versions) == 190  # the history stays listed
    assert [v["VersionId"] for v in versions if "Document" in v] == [read_only["DefaultVersionId"]] == ["v190"]
    staged = db.execute("SELECT default_version_id, document FROM iam_stage.managed_policies "
                        "WHERE account_id = %s AND snapshot_date = %s AND arn = %s",
                        (member, ALL_VERSIONS, READ_ONLY)).fetchone()
    current = boto3.client("iam", endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                           aws_secret_access_key=SECRET)
    assert staged[0] == "v190"
    assert staged[1] == current.get_policy_version(PolicyArn=READ_ONLY, VersionId="v190")["PolicyVersion"]["Document"]

    # the same cap still refuses an object that inflates past it
    bomb = gzip.compress(b'{"Policies": "' + b"a" * (2 * 2**20) + b'"}')
    with pytest.raises(layout.ObjectTooLarge, match="gzip bomb"):
        layout.decode(bomb, "s3://bucket/bomb.json.gz")
