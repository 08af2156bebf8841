"""Assumed-role sessions against the emulator over HTTP: session policy, credential refresh, the
connection's client settings, role path and partition, thread safety of client creation."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from iam_audit.aws import SESSION_POLICY_MAX_CHARS, AwsTarget, audit_session_policy, target_from_connection
from iam_audit.config import AuditConfig, build_config
from iam_audit.evaluate.policies import load_policy
from iam_audit.ingest.extract import extract_account_datasets
from tests.conftest import account_of

KEY_ID, SECRET = "AKIASESSIONTEST00001", "session-test-secret-value"
ROLE = "OrganizationAccountAccessRole"


def target_for(emulator, **kwargs) -> AwsTarget:
    session = boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name="us-east-1")
    return AwsTarget(session=session, endpoint_url=emulator.url, **kwargs)


def role_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{ROLE}"


def calls(emulator, action: str) -> int:
    return sum(c["count"] for c in emulator.calls() if c["action"] == action)


# ---- the session can do no more than the audit needs ---------------------------------

def test_session_policy_is_the_audit_permissions_and_fits_aws_limit():
    policy = audit_session_policy()
    assert json.loads(policy) == load_policy("audit-role-permissions.json")
    assert len(policy) <= SESSION_POLICY_MAX_CHARS


def test_pipeline_session_is_refused_mutating_calls_even_when_the_role_is_admin(emulator):
    account_id = account_of(emulator.manifest, "none")
    name = f"session-policy-probe-{datetime.now(UTC).strftime('%H%M%S%f')}"
    # Without a session policy the role (administrator, as OrganizationAccountAccessRole is) may create users...
    unrestricted = target_for(emulator, session_policy=None)
    admin_iam = unrestricted.client("iam", session=unrestricted.assume_role(role_arn(account_id)))
    admin_iam.create_user(UserName=name)
    admin_iam.delete_user(UserName=name)
    # ...the pipeline's session may not, whatever the role allows; it may still read.
    target = target_for(emulator)
    session = target.assume_role(role_arn(account_id))
    iam = target.client("iam", session=session)
    with pytest.raises(ClientError) as refused:
        iam.create_user(UserName=name)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert "session policy" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        target.client("s3", session=session).list_buckets()
    assert iam.get_account_summary()["SummaryMap"]
    results = extract_account_datasets(target, session, poll_budget_seconds=30)
    assert {n: r.error_code for n, r in results.items() if not r.ok} == {}


# ---- credentials refresh before they expire ------------------------------------------

def test_assumed_role_credentials_are_refreshed_before_they_expire(emulator):
    account_id = account_of(emulator.manifest, "weak")
    lifetime = 6  # AWS's minimum is 900 s; the emulator honours any DurationSeconds, botocore must let it pass
    target = target_for(emulator, session_seconds=lifetime, connection_config=Config(parameter_validation=False))
    iam = target.client("iam", session=target.assume_role(role_arn(account_id)))
    first = next(c for c in reversed(emulator.issued_credentials()) if c["role_arn"] == role_arn(account_id))
    static = boto3.client("iam", endpoint_url=emulator.url, region_name="us-east-1",
                          aws_access_key_id=first["access_key_id"], aws_secret_access_key=first["secret_access_key"],
                          aws_session_token=first["session_token"])
    assert static.get_account_summary()["SummaryMap"]
    assert iam.get_account_summary()["SummaryMap"]
    time.sleep(lifetime + 0.5)
    with pytest.raises(ClientError) as expired:  # the emulator expires sessions as STS does
        static.get_account_summary()
    assert expired.value.response["Error"]["Code"] == "ExpiredToken"
    assert iam.get_account_summary()["SummaryMap"]  # refreshed through AssumeRole
    assert calls(emulator, "AssumeRole") >= 2


# ---- the connection's config_kwargs reach every client ---------------------------------

def test_connection_config_kwargs_reach_every_client_with_the_retry_configuration(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_PROXIED", json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET,
        "extra": {"endpoint_url": emulator.url, "region_name": "us-east-1",
                  # the emulator doubles as the HTTP proxy and counts what came through it
                  "config_kwargs": {"proxies": {"http": emulator.url}, "read_timeout": 17}}}))
    account_id = account_of(emulator.manifest, "weak")
    before = emulator.proxied_requests()
    target = target_from_connection("aws_proxied")
    session = target.assume_role(AuditConfig(bucket="b").role_arn(account_id, target.partition()))
    results = extract_account_datasets(target, session, poll_budget_seconds=30)
    assert {n: r.error_message for n, r in results.items() if not r.ok} == {}
    proxied = Counter(emulator.proxied_requests()) - Counter(before)
    assert proxied["sts"] >= 2 and proxied["iam"] >= 5 and proxied["ec2"] >= 1 and proxied["accessanalyzer"] >= 1
    for client in (target.client("sts"), target.client("iam", session=session)):
        assert client.meta.config.read_timeout == 17
        assert client.meta.config.retries["mode"] == "adaptive"
        assert client.meta.config.proxies == {"http": emulator.url}


# ---- role path and the caller's partition ---------------------------------------------

def test_role_arn_has_the_role_path_and_the_callers_partition(emulator):
    config = build_config({"iam_audit_bucket": "bucket-ok", "iam_audit_role_path": "/security/audit/"})
    account_id = account_of(emulator.manifest, "weak")
    target = target_for(emulator)
    arn = config.role_arn(account_id, target.partition())
    assert arn == f"arn:aws:iam::{account_id}:role/security/audit/IamAuditReadOnly"
    target.assume_role(arn)
    assert any(c["role_arn"] == arn for c in emulator.issued_credentials())
    gov = AwsTarget(session=boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                          region_name="us-gov-west-1"),
                    endpoint_url=emulator.url, region_name="us-gov-west-1")
    gov_arn = config.role_arn(account_id, gov.partition())
    assert gov_arn == f"arn:aws-us-gov:iam::{account_id}:role/security/audit/IamAuditReadOnly"
    gov.assume_role(gov_arn)
    assert any(c["role_arn"] == gov_arn for c in emulator.issued_credentials())


def test_access_keys_carry_the_users_arn_with_its_path(emulator):
    from iam_audit.ingest.transform import transform_dataset

    account_id = account_of(emulator.manifest, "none")
    name = f"pathed-{datetime.now(UTC).strftime('%H%M%S%f')}"
    admin = target_for(emulator, session_policy=None)
    admin_iam = admin.client("iam", session=admin.assume_role(role_arn(account_id)))
    admin_iam.create_user(UserName=name, Path="/engineering/ci/")
    key = admin_iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    try:
        target = target_for(emulator)
        results = extract_account_datasets(target, target.assume_role(role_arn(account_id)), poll_budget_seconds=30)
        payloads = {n: r.payload for n, r in results.items() if r.ok}
        rows = transform_dataset("access_keys", payloads["access_keys"], account_id, payloads)["access_keys"]
        assert {r[2]: r[1] for r in rows}[key] == f"arn:aws:iam::{account_id}:user/engineering/ci/{name}"
    finally:
        admin_iam.delete_access_key(UserName=name, AccessKeyId=key)
        admin_iam.delete_user(UserName=name)


# ---- boto3 sessions are not thread-safe ----------------------------------------------

def test_clients_are_never_created_concurrently_and_once_per_service_and_region(emulator, monkeypatch):
    account_id = account_of(emulator.manifest, "weak")
    original = boto3.Session.client
    lock, in_flight, created = threading.Lock(), Counter(), Counter()
    overlaps = []

    def client(self, service, *args, **kwargs):
        with lock:
            in_flight[id(self)] += 1
            if in_flight[id(self)] > 1:
                overlaps.append(service)
            created[(service, kwargs.get("region_name"))] += 1
        try:
            time.sleep(0.01)  # widen the window in which a second thread could enter
            return original(self, service, *args, **kwargs)
        finally:
            with lock:
                in_flight[id(self)] -= 1

    monkeypatch.setattr(boto3.Session, "client", client)
    target = target_for(emulator)
    results = extract_account_datasets(target, target.assume_role(role_arn(account_id)), poll_budget_seconds=30)
    assert all(r.ok for r in results.values())
    assert not overlaps, f"clients created concurrently from one boto3 Session: {overlaps}"
    regions = len(results["access_analyzers"].payload["AnalyzersByRegion"])
    assert max(created.values()) == 1
    assert sum(created.values()) == 1 + 3 + regions  # sts, then iam, account, ec2 and one per region


# ---- trust policy variants -------------------------------------------------------------

@pytest.mark.parametrize(("name", "values", "principal"), [
    ("audit-role-trust.json", {"PipelineRoleName": "airflow-worker"},
     "arn:aws:iam::123456789012:role/airflow-worker"),
    ("audit-role-trust-role-with-path.json",
     {"Partition": "aws-us-gov", "PipelineRolePath": "/platform/airflow/", "PipelineRoleName": "worker"},
     "arn:aws-us-gov:iam::123456789012:role/platform/airflow/worker"),
    ("audit-role-trust-user.json", {"Partition": "aws", "PipelineUserPath": "/", "PipelineUserName": "iam-audit"},
     "arn:aws:iam::123456789012:user/iam-audit"),
])
def test_trust_policy_variants_name_the_principal_with_its_path_and_require_the_external_id(
        emulator, name, values, principal):
    document = load_policy(name, PipelineAccountId="123456789012", ExternalId="ext-id-0123456789", **values)
    assert "${" not in json.dumps(document), "every placeholder is documented and filled"
    (statement,) = document["Statement"]
    assert statement["Principal"] == {"AWS": principal} and statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "ext-id-0123456789"}}
    account_id = account_of(emulator.manifest, "none")
    admin = target_for(emulator, session_policy=None)
    iam = admin.client("iam", session=admin.assume_role(role_arn(account_id)))
    role = f"trust-{name.removesuffix('.json')}"[:64]
    try:
        created = iam.create_role(RoleName=role, Path="/security/", AssumeRolePolicyDocument=json.dumps(document))
        assert created["Role"]["Arn"] == f"arn:aws:iam::{account_id}:role/security/{role}"
    finally:
        iam.delete_role(RoleName=role)
