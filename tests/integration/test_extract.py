"""Extraction through real boto3 wire calls against the emulator over HTTP."""

import boto3
import pytest

from iam_audit.aws import AwsTarget
from iam_audit.ingest.extract import DATASETS, extract_account_datasets, unreachable_account
from tests.conftest import account_of


def target_for(emulator, max_attempts=None) -> AwsTarget:
    session = boto3.Session(aws_access_key_id="AKIAEXTRACTTEST00001", aws_secret_access_key="not-a-real-secret",
                            region_name="us-east-1")
    return AwsTarget(session=session, endpoint_url=emulator.url, max_attempts=max_attempts)


def extract(emulator, account_id, **kwargs):
    target = target_for(emulator, kwargs.pop("max_attempts", None))
    session = target.assume_role(f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole")
    return extract_account_datasets(target, session, **kwargs)


def test_every_dataset_of_a_weak_account(emulator):
    account_id = account_of(emulator.manifest, "weak")
    results = extract(emulator, account_id)
    assert list(results) == list(DATASETS)
    assert {n: r.status for n, r in results.items()} == {n: "ok" for n in DATASETS}
    report = results["credential_report"].payload
    assert report["Content"].splitlines()[1].startswith("<root_account>,")
    users = {u["UserName"] for u in results["authorization_details"].payload["UserDetailList"]}
    assert {"alice-admin", "bob-nomfa", "svc-two-keys"} <= users
    keys = results["access_keys"].payload["AccessKeyMetadata"]
    assert {k["UserName"] for k in keys} == {"svc-deploy", "svc-legacy", "svc-two-keys", "svc-unused"}
    assert results["account_summary"].payload["SummaryMap"]["AccountAccessKeysPresent"] == 1
    devices = results["virtual_mfa_devices"].payload["VirtualMFADevices"]
    assert any(d["SerialNumber"].endswith(":mfa/root-account-mfa-device") for d in devices)
    assert all(set(d) <= {"SerialNumber", "User", "EnableDate"} for d in devices), "MFA seeds must be dropped"
    analyzers = results["access_analyzers"].payload["AnalyzersByRegion"]
    assert analyzers["us-east-1"] and not analyzers["eu-west-1"]
    assert results["alternate_contacts"].payload == {"SECURITY": None}


@pytest.mark.parametrize(("operation", "keys", "identity", "kwargs"), [
    ("get_account_authorization_details", ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies"),
     "Arn", {}),
    ("list_virtual_mfa_devices", ("VirtualMFADevices",), "SerialNumber", {"AssignmentStatus": "Any"}),
])
def test_every_page_of_a_listing_is_read(emulator, operation, keys, identity, kwargs):
    """IAM pages at up to 1,000 items, more than the emulator's accounts hold: a page size of 2 makes
    the weak account's listings span pages (the emulator pages them as AWS does), and the merged result
    must hold every item of every page."""
    from iam_audit.ingest.extract import _paginate

    account_id = account_of(emulator.manifest, "weak")
    target = target_for(emulator)
    session = target.assume_role(f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole")
    iam = target.client("iam", session=session)
    pages = list(iam.get_paginator(operation).paginate(PaginationConfig={"PageSize": 2}, **kwargs))
    assert len(pages) >= 2, "the emulator must page this listing"
    whole = _paginate(iam, operation, keys, **kwargs)
    paged = _paginate(iam, operation, keys, PaginationConfig={"PageSize": 2}, **kwargs)
    for key in keys:  # identities only: a role's RoleLastUsed moves with every AssumeRole
        assert [item[identity] for item in paged[key]] == [item[identity] for item in whole[key]], key
    assert sum(len(page[key]) for page in pages for key in keys) == sum(len(whole[key]) for key in keys)


def test_missing_password_policy_is_collected_as_no_policy(emulator):
    results = extract(emulator, account_of(emulator.manifest, "none"))
    assert results["password_policy"].ok
    assert results["password_policy"].payload == {"PasswordPolicy": None}


def test_access_denied_on_one_api_only_loses_that_dataset(emulator):
    account_id = account_of(emulator.manifest, "weak")
    emulator.set_faults([{"account_id": account_id, "service": "iam",
                          "action": "GetAccountAuthorizationDetails", "error": "AccessDenied"}])
    results = extract(emulator, account_id)
    assert results["authorization_details"].status == "error"
    assert results["authorization_details"].error_code == "AccessDenied"
    assert all(r.ok for n, r in results.items() if n != "authorization_details")


def test_throttling_bursts_are_retried(emulator):
    account_id = account_of(emulator.manifest, "none")
    # One throttled call stands for all: every client shares one retry configuration
    # (tests/integration/test_aws_sessions.py), and each throttled attempt waits out a real backoff.
    emulator.set_faults([{"account_id": account_id, "service": "iam", "action": "GetAccountAuthorizationDetails",
                          "error": "Throttling", "times": 3}])
    results = extract(emulator, account_id)
    assert all(r.ok for r in results.values()), {n: r.error_code for n, r in results.items() if not r.ok}
    throttled = [c for c in emulator.calls() if c["action"] == "GetAccountAuthorizationDetails"]
    assert sum(c["count"] for c in throttled) >= 4  # three throttled attempts, then success


def test_throttled_past_retries_is_an_error(emulator):
    account_id = account_of(emulator.manifest, "none")
    emulator.set_faults([{"account_id": account_id, "service": "iam", "action": "GetAccountSummary",
                          "error": "Throttling"}])
    results = extract(emulator, account_id, max_attempts=2)
    assert results["account_summary"].status == "error"
    assert results["account_summary"].error_code == "Throttling"


def test_credential_report_that_never_becomes_ready(emulator):
    account_id = account_of(emulator.manifest, "strong")
    emulator.set_faults([{"account_id": account_id, "service": "iam", "action": "GenerateCredentialReport",
                          "error": "NeverReady"}])
    results = extract(emulator, account_id, poll_budget_seconds=2)
    assert results["credential_report"].error_code == "CredentialReportNotReady"
    assert "after 2 s" in results["credential_report"].error_message
    assert results["access_keys"].status == "error"
    assert results["authorization_details"].ok


@pytest.mark.parametrize("fault", [
    {"action": "GetCredentialReport", "error": "ReportExpired", "times": 1},
    {"action": "GenerateCredentialReport", "error": "LimitExceeded", "times": 2},
])
def test_expired_report_and_generation_limit_regenerate_within_the_budget(emulator, fault):
    account_id = account_of(emulator.manifest, "weak")
    emulator.set_faults([{"account_id": account_id, "service": "iam", **fault}])
    results = extract(emulator, account_id, poll_budget_seconds=30)
    assert results["credential_report"].ok, results["credential_report"].error_message
    assert results["access_keys"].ok
    calls = {c["action"]: c["count"] for c in emulator.calls() if c["account_id"] == account_id}
    assert calls["GenerateCredentialReport"] >= 2


def test_assume_role_denied_is_reported_for_the_account(emulator):
    account_id = account_of(emulator.manifest, "weak")
    emulator.set_faults([{"service": "sts", "action": "AssumeRole", "error": "AccessDenied",
                          "target_account_id": account_id}])
    target = target_for(emulator, max_attempts=2)
    with pytest.raises(Exception) as err:
        target.assume_role(f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole")
    assert "AccessDenied" in str(err.value)
    marked = unreachable_account("AccessDenied", "could not assume role")
    assert {r.status for r in marked.values()} == {"error"}


def test_calls_per_account_are_account_wide(emulator):
    """No call per group, role or policy; one ListAccessKeys per user with keys."""
    account_id = account_of(emulator.manifest, "weak")
    extract(emulator, account_id)
    calls = {c["action"]: c["count"] for c in emulator.calls() if c["account_id"] == account_id}
    assert calls["ListAccessKeys"] == 4
    assert calls.get("GetAccountAuthorizationDetails") == 1
    per_entity = {"GetUser", "GetRole", "GetGroup", "GetPolicy", "GetPolicyVersion", "ListAttachedUserPolicies",
                  "ListUserPolicies", "GetAccessKeyLastUsed", "ListMFADevices"}
    assert not per_entity & set(calls)


def test_a_user_name_with_a_comma_survives_the_credential_report(emulator):
    """IAM allows commas in user names; the report's CSV quotes that field and the load reads it whole."""
    from iam_audit.ingest import transform

    account_id = account_of(emulator.manifest, "weak")
    admin = target_for(emulator)
    admin.session_policy = None  # the test's own set-up, not the pipeline: no read-only session policy
    session = admin.assume_role(f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole")
    iam = admin.client("iam", session=session)
    name = "ops,deploy"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    try:
        report = extract(emulator, account_id)["credential_report"].payload
        assert f'"{name}","arn:aws:iam::{account_id}:user/{name}"' in report["Content"]
        rows = {r[0]: r for r in transform.credential_report(report)["credential_report"]}
        assert rows[name][1] == f"arn:aws:iam::{account_id}:user/{name}"
        cols = transform.COLUMNS["credential_report"]
        assert dict(zip(cols, rows[name], strict=True))["access_key_1_active"] is True
    finally:
        iam.delete_access_key(UserName=name, AccessKeyId=key)
        iam.delete_user(UserName=name)
