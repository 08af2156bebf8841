"""Permanent failures (access denied, missing role, Organizations refused) fail fast with what to fix;
transient ones stay retryable; a sharply smaller account set is flagged and prunes nothing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import boto3
import pytest

from iam_audit import tasks
from iam_audit.aws import AwsTarget
from iam_audit.config import AuditConfig
from iam_audit.ingest.discover import OrganizationsAccessDenied, list_organization_accounts
from iam_audit.ingest.extract_accounts import AccountExtractionError, PermanentExtractionError, extract_one
from iam_audit.ingest.raw_store import S3RawStore
from iam_audit.ingest.staging import account_set_shrink, prune_other_accounts
from iam_audit.plan import RunPlan
from tests.conftest import account_of

KEY_ID, SECRET = "AKIAFAILURECLASSES01", "failure-classes-test-secret"
SNAPSHOT = "2026-11-02"


@pytest.fixture()
def bucket(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET,
        "extra": {"endpoint_url": emulator.url, "region_name": "us-east-1"}}))
    name = f"fc-{datetime.now(UTC).strftime('%H%M%S%f')}"
    boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                 aws_secret_access_key=SECRET).create_bucket(Bucket=name)
    return name


def target(emulator) -> AwsTarget:
    return AwsTarget(session=boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                           region_name="us-east-1"), endpoint_url=emulator.url, max_attempts=2)


def extract(emulator, bucket, account_id):
    return extract_one(target(emulator), AuditConfig(bucket=bucket), S3RawStore(bucket), SNAPSHOT,
                       {"account_id": account_id, "account_name": "x"}, "run-1", poll_budget_seconds=3)


def test_missing_role_is_permanent_and_says_how_to_fix_it(emulator, bucket):
    account_id = account_of(emulator.manifest, "weak")
    emulator.set_faults([{"service": "sts", "action": "AssumeRole", "error": "AccessDenied",
                          "target_account_id": account_id}])
    with pytest.raises(PermanentExtractionError) as err:
        extract(emulator, bucket, account_id)
    message = str(err.value)
    assert "deploy the read-only audit role IamAuditReadOnly" in message
    assert "deploy/cloudformation/" in message


def test_denied_api_is_permanent_throttling_is_not(emulator, bucket):
    account_id = account_of(emulator.manifest, "weak")
    emulator.set_faults([{"account_id": account_id, "service": "iam", "action": "GetAccountAuthorizationDetails",
                          "error": "AccessDenied"}])
    with pytest.raises(PermanentExtractionError, match="audit-role-permissions.json"):
        extract(emulator, bucket, account_id)
    emulator.set_faults([{"account_id": account_id, "service": "iam", "action": "GetAccountSummary",
                          "error": "Throttling"}])
    with pytest.raises(AccountExtractionError) as err:
        extract(emulator, bucket, account_id)
    assert not isinstance(err.value, PermanentExtractionError)


def test_the_extract_task_does_not_retry_permanent_failures(emulator, bucket):
    from airflow.sdk.exceptions import AirflowFailException

    account_id = account_of(emulator.manifest, "none")
    emulator.set_faults([{"service": "sts", "action": "AssumeRole", "error": "AccessDenied",
                          "target_account_id": account_id}])
    plan = RunPlan(mode="live", snapshot_date=date.fromisoformat(SNAPSHOT), run_id="run-2",
                   config=AuditConfig(bucket=bucket, role_name="IamAuditReadOnly"))
    with pytest.raises(AirflowFailException, match="could not assume"):
        tasks.extract(plan, {"account_id": account_id, "account_name": "x"}, "aws_default")


def test_organizations_access_denied_is_a_configuration_error(emulator):
    emulator.set_faults([{"service": "organizations", "action": "ListAccounts", "error": "AccessDeniedException"}])
    with pytest.raises(OrganizationsAccessDenied) as err:
        list_organization_accounts(target(emulator))
    assert "organizations:ListAccounts" in str(err.value)
    assert "management account or a delegated administrator" in str(err.value)
    emulator.set_faults([{"service": "organizations", "action": "ListAccounts",
                          "error": "AWSOrganizationsNotInUseException"}])
    assert list_organization_accounts(target(emulator)) is None
    emulator.clear_faults()
    assert len(list_organization_accounts(target(emulator))) == len(emulator.manifest["accounts"])


def test_a_sharp_shrink_is_flagged_and_nothing_is_pruned(db, postgres, database):
    ids = [f"1000000000{i:02d}" for i in range(5)]
    for day in ("2026-11-01", "2026-11-02"):
        for account_id in ids if day == "2026-11-01" else ids[:4]:
            db.execute("INSERT INTO iam_stage.accounts (snapshot_date, account_id, extracted_at) "
                       "VALUES (%s, %s, now())", (day, account_id))
    db.commit()

    def connect():
        return postgres.connect(database)

    assert account_set_shrink("2026-11-02", ids[:4], connect, 30) is None  # no change on a rerun
    shrink = account_set_shrink("2026-11-03", ids[:1], connect, 30)  # against 2026-11-02
    assert shrink and shrink.previous == 4 and shrink.current == 1 and shrink.missing == ids[1:4]
    assert "iam_audit_max_account_drop_percent" in shrink.message(30)
    assert account_set_shrink("2026-11-03", ids[:1], connect, 100) is None
    assert account_set_shrink("2026-11-03", ids[:3], connect, 30) is None  # one of four: 25 %
    assert prune_other_accounts("2026-11-02", ids[:3], connect) == [ids[3]]
