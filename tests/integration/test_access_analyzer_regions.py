"""Access Analyzer per region: a region refused by a region-deny SCP is recorded with its reason,
the other regions still count, and the verdict names the unreadable regions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest

from iam_audit.aws import AwsTarget
from iam_audit.config import AuditConfig
from iam_audit.database import run_check
from iam_audit.ingest.extract import extract_account_datasets
from iam_audit.ingest.extract_accounts import extract_one
from iam_audit.ingest.raw_store import S3RawStore
from iam_audit.ingest.staging import load_snapshot

KEY_ID, SECRET = "AKIAANALYZERREGION01", "analyzer-region-test-secret"
SNAPSHOT = "2026-11-03"


def strong_member(manifest) -> str:
    return next(a["id"] for a in manifest["accounts"]
                if a["profile"] == "strong" and a["id"] != manifest["management_account_id"])


def target(emulator, region="us-east-1") -> AwsTarget:
    return AwsTarget(session=boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                           region_name=region), endpoint_url=emulator.url, region_name=region,
                     max_attempts=2)


def extract(emulator, account_id, region="us-east-1"):
    t = target(emulator, region)
    return extract_account_datasets(t, t.assume_role(f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole"))


def test_a_region_denied_by_an_scp_is_recorded_per_region(emulator):
    account_id = strong_member(emulator.manifest)
    emulator.set_faults([{"account_id": account_id, "service": "accessanalyzer", "region": "eu-west-1",
                          "error": "SCPDenied"}])
    result = extract(emulator, account_id)["access_analyzers"]
    assert result.ok, result.error_message
    errors = result.payload["RegionErrors"]
    assert list(errors) == ["eu-west-1"] and errors["eu-west-1"]["Code"] == "AccessDeniedException"
    assert "service control policy" in errors["eu-west-1"]["Message"]
    assert result.payload["AnalyzersByRegion"]["us-east-1"]


def test_transient_region_failures_still_fail_the_data_set(emulator):
    account_id = strong_member(emulator.manifest)
    emulator.set_faults([{"account_id": account_id, "service": "accessanalyzer", "region": "eu-west-1",
                          "error": "ServiceUnavailableException"}])
    result = extract(emulator, account_id)["access_analyzers"]
    assert not result.ok and result.error_code == "AccessAnalyzerUnavailable"


def test_describe_regions_falls_back_to_us_east_1(emulator):
    account_id = strong_member(emulator.manifest)
    emulator.set_faults([{"account_id": account_id, "service": "ec2", "region": "eu-central-1",
                          "error": "SCPDenied"}])
    regions = extract(emulator, account_id, region="eu-central-1")["regions"]
    assert regions.ok, regions.error_message
    assert regions.payload["DescribedIn"] == "us-east-1" and len(regions.payload["Regions"]) > 10


@pytest.fixture()
def bucket(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET,
        "extra": {"endpoint_url": emulator.url, "region_name": "us-east-1"}}))
    name = f"aa-{datetime.now(UTC).strftime('%H%M%S%f')}"
    boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                 aws_secret_access_key=SECRET).create_bucket(Bucket=name)
    return name


def test_the_verdict_names_the_unreadable_regions(emulator, bucket, db, postgres, database):
    account_id = strong_member(emulator.manifest)
    emulator.set_faults([{"account_id": account_id, "service": "accessanalyzer",
                          "region": ["eu-west-1", "ap-south-1"], "error": "SCPDenied"}])
    store = S3RawStore(bucket)
    summary = extract_one(target(emulator), AuditConfig(bucket=bucket), store, SNAPSHOT,
                          {"account_id": account_id, "account_name": "x"}, "run-aa")
    assert summary["datasets_failed"] == []
    load_snapshot(store, "iam", SNAPSHOT, [{"account_id": account_id}], lambda: postgres.connect(database),
                  run_id="run-aa")
    staged = dict(db.execute("SELECT region_name, status FROM iam_stage.access_analyzer_regions "
                             "WHERE account_id = %s AND status = 'error'", (account_id,)).fetchall())
    assert staged == {"ap-south-1": "error", "eu-west-1": "error"}
    types = {t for (t,) in db.execute("SELECT DISTINCT analyzer_type FROM iam_stage.access_analyzers "
                                      "WHERE account_id = %s", (account_id,))}
    assert types == {"ACCOUNT"}
    run_check(db, "access_analyzer_enabled", SNAPSHOT)
    # v1.3.0 asks for one active analyzer in any region: the readable regions have one
    any_region = db.execute("SELECT DISTINCT status FROM aws_policy_results WHERE account_id = %s "
                            "AND control_logic = 'access_analyzer_enabled' AND framework = 'cis_v1.3.0'",
                            (account_id,)).fetchall()
    assert any_region == [("pass",)]
    # from v1.4.0 every enabled region needs one: the unreadable regions make it unknown
    rows = db.execute("SELECT DISTINCT status, reason FROM aws_policy_results WHERE account_id = %s "
                      "AND control_logic = 'access_analyzer_enabled' AND framework <> 'cis_v1.3.0'",
                      (account_id,)).fetchall()
    assert len(rows) == 1
    status, reason = rows[0]
    assert status == "error"
    assert "ap-south-1 (AccessDeniedException" in reason and "eu-west-1 (AccessDeniedException" in reason
    assert "2 of" in reason


def test_a_region_disabled_after_the_region_listing_is_recorded_not_fatal(emulator):
    """A region the account disables between DescribeRegions and ListAnalyzers answers
    UnrecognizedClientException (the session's token is not valid there): recorded for that region."""
    account_id = strong_member(emulator.manifest)
    emulator.set_faults([{"account_id": account_id, "service": "accessanalyzer", "region": "eu-west-1",
                          "error": "UnrecognizedClientException", "status": 403,
                          "message": "The security token included in the request is invalid."}])
    result = extract(emulator, account_id)["access_analyzers"]
    assert result.ok, result.error_message
    assert result.payload["RegionErrors"]["eu-west-1"]["Code"] == "UnrecognizedClientException"
    assert result.payload["AnalyzersByRegion"]["us-east-1"]
