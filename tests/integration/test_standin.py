"""The benchmark's AWS stand-in (iam_audit_dev.standin) against the emulator it was recorded from: the
pipeline's real extraction of one account stores the same raw payloads through both, and makes the
same calls, once account ids and timestamps are set aside. A call the extraction makes that the
recording lacks, or an answer the stand-in alters, fails here rather than skewing a benchmark."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import boto3
import pytest
from iam_audit_dev.standin import StandInApp, record, start_standin

from iam_audit.aws import AwsTarget
from iam_audit.config import AuditConfig
from iam_audit.ingest import layout
from iam_audit.ingest.extract_accounts import extract_one
from iam_audit.ingest.raw_store import S3RawStore
from tests.conftest import account_of

pytestmark = pytest.mark.extended  # guards a benchmark tool: make test-extended, make bench

KEY_ID, SECRET = "AKIASTANDINTEST00001", "stand-in-test-secret"
SNAPSHOT = "2026-11-03"
_SHA256 = re.compile(r'"sha256": "[0-9a-f]{64}"')  # of the stored bytes, which hold the account id
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")


@pytest.fixture(scope="module")
def recorded(seeded_emulator, tmp_path_factory):
    template = account_of(seeded_emulator.manifest, "weak")
    snapshot = record(seeded_emulator.url, template)
    path = tmp_path_factory.mktemp("standin") / "snapshot.json"
    path.write_text(json.dumps(snapshot))
    return template, path


@pytest.fixture(scope="module")
def standin(recorded):
    with start_standin(recorded[1], accounts=4) as server:
        yield server


def extract_through(url: str, account_id: str, monkeypatch) -> dict:
    """extract_one into a fresh bucket behind `url`; every stored object, decoded, by file name."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET,
        "extra": {"endpoint_url": url, "region_name": "us-east-1"}}))
    bucket = f"standin-{datetime.now(UTC).strftime('%H%M%S%f')}"
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                      aws_secret_access_key=SECRET)
    s3.create_bucket(Bucket=bucket)
    target = AwsTarget(session=boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                             region_name="us-east-1"), endpoint_url=url, max_attempts=2)
    store = S3RawStore(bucket)
    summary = extract_one(target, AuditConfig(bucket=bucket), store, SNAPSHOT,
                          {"account_id": account_id, "account_name": "x"}, "run-1", poll_budget_seconds=10)
    assert summary["datasets_failed"] == []
    prefix = layout.account_prefix(AuditConfig(bucket=bucket).prefix, SNAPSHOT, account_id)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    stored = {}
    for key in keys:
        blob = store.get(key)
        stored[key[len(prefix):]] = (json.loads(blob) if key.endswith(layout.MANIFEST)
                                     else layout.decode(blob, store.url(key)))
    return stored


def normalised(stored: dict, account_id: str) -> dict:
    text = json.dumps(stored, sort_keys=True, default=str).replace(account_id, "<account>")
    return json.loads(_SHA256.sub('"sha256": "<sha256>"', _TIME.sub("<time>", text)))


def calls_of(calls: list[dict], account_id: str) -> dict:
    return {f"{c['service']}:{c['action']}": c["count"] for c in calls if c["account_id"] == account_id}


def test_extraction_through_the_standin_equals_the_emulators(emulator, recorded, standin, monkeypatch):
    template, _ = recorded
    member = next(a["id"] for a in standin.manifest["accounts"]
                  if a["id"] not in (standin.manifest["management_account_id"], template))

    emulator.reset_calls()
    from_emulator = extract_through(emulator.url, template, monkeypatch)
    emulator_calls = emulator.calls()
    standin.reset_calls()
    from_standin = extract_through(standin.url, member, monkeypatch)
    standin_calls = standin.calls()

    assert sorted(from_standin) == sorted(from_emulator)
    assert len(from_emulator) > len(from_emulator["_manifest.json"]["datasets"]) / 2
    assert normalised(from_standin, member) == normalised(from_emulator, template)
    # The stand-in's own answers carry the member's id, never the template's.
    assert template not in json.dumps(from_standin, default=str)
    assert member in from_standin["credential_report.json.gz"]["Content"]

    # Same calls per operation, for the audited account and (S3, STS) for the caller.
    assert calls_of(standin_calls, member) == calls_of(emulator_calls, template)
    caller = emulator.manifest["management_account_id"]
    assert standin.manifest["management_account_id"] == caller
    assert calls_of(standin_calls, caller) == calls_of(emulator_calls, caller)


def test_organisation_of_n_accounts_and_calls_the_recording_lacks(recorded, standin):
    org = boto3.client("organizations", endpoint_url=standin.url, region_name="us-east-1",
                       aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
    standin.set_accounts(45)
    try:
        pages = list(org.get_paginator("list_accounts").paginate())
        ids = [a["Id"] for page in pages for a in page["Accounts"]]
        assert len(pages) == 3 and len(ids) == len(set(ids)) == 45
        assert ids == [a["id"] for a in standin.manifest["accounts"]]
        iam = boto3.client("iam", endpoint_url=standin.url, region_name="us-east-1",
                           aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
        with pytest.raises(iam.exceptions.ClientError) as err:
            iam.list_users()
        assert err.value.response["Error"]["Code"] == "StandInNotRecorded"
    finally:
        standin.set_accounts(4)


def test_snapshot_of_another_format_is_refused(recorded):
    snapshot = json.loads(recorded[1].read_text())
    snapshot["format"] = 0
    with pytest.raises(ValueError, match="format"):
        StandInApp(snapshot)
