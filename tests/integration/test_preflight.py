"""`make preflight` against the emulator: a clean configuration passes with a handful of calls per account;
a denied role, a denied API, a missing bucket and a read-only database are each named with their fix."""

from __future__ import annotations

import json
import uuid

import boto3
import psycopg
import pytest

from iam_audit.preflight import AUDIT_POLICY, format_report, run_preflight
from tests.conftest import account_of

KEY_ID, SECRET = "AKIAPREFLIGHTTEST001", "preflight-test-secret"


@pytest.fixture()
def configured(emulator, postgres, database, monkeypatch):
    """The contract's settings in the environment, as `make run` and `make preflight` read them."""
    bucket = f"preflight-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                 aws_secret_access_key=SECRET).create_bucket(Bucket=bucket)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET,
        "extra": {"endpoint_url": emulator.url, "region_name": "us-east-1"}}))
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", postgres.airflow_conn_json(database))
    monkeypatch.setenv("AIRFLOW_VAR_IAM_AUDIT_BUCKET", bucket)
    monkeypatch.setenv("AIRFLOW_VAR_IAM_AUDIT_EXTERNAL_ID", "preflight-external-id")
    return bucket


def by_scope(report) -> dict[tuple[str, str], object]:
    return {(f.scope, f.item): f for f in report.findings}


def test_a_clean_configuration_passes_with_one_read_per_data_set(emulator, configured):
    emulator.reset_calls()
    report = run_preflight()
    assert report.ok, format_report(report)
    accounts = [a["account_id"] for a in report.accounts]
    assert accounts == [a["id"] for a in emulator.manifest["accounts"]] or set(accounts) == {
        a["id"] for a in emulator.manifest["accounts"]}
    found = by_scope(report)
    for account_id in accounts:
        assert found[(account_id, "assume role")].ok
        assert "with ExternalId" in found[(account_id, "assume role")].detail
    calls: dict[str, int] = {}
    for c in emulator.calls():
        if c["service"] in ("iam", "ec2", "accessanalyzer", "account"):
            calls[c["account_id"]] = calls.get(c["account_id"], 0) + c["count"]
    assert set(calls) == set(accounts)
    assert max(calls.values()) <= 12, calls  # one read per data set (two for identity providers), one region
    assert {(f.scope, f.item) for f in report.findings if f.scope == "bucket"} == {
        ("bucket", "list"), ("bucket", "write"), ("bucket", "read back"), ("bucket", "encryption")}
    assert "Ready for a first run." in format_report(report)


def test_a_denied_role_and_a_denied_api_are_named_with_their_fix(emulator, configured):
    no_role, no_summary = account_of(emulator.manifest, "weak"), account_of(emulator.manifest, "none")
    emulator.set_faults([
        {"service": "sts", "action": "AssumeRole", "error": "AccessDenied", "target_account_id": no_role},
        {"account_id": no_summary, "service": "iam", "action": "GetAccountSummary", "error": "AccessDenied"},
    ])
    report = run_preflight()
    assert not report.ok
    found = by_scope(report)
    role = found[(no_role, "assume role")]
    assert not role.ok and "AccessDenied" in role.detail and "deploy/cloudformation/" in role.fix
    assert not [f for f in report.findings if f.scope == no_role and f.item != "assume role"]  # nothing else tried
    summary = found[(no_summary, "account_summary")]
    assert not summary.ok and summary.detail == "iam:GetAccountSummary: AccessDenied"
    assert "allow iam:GetAccountSummary" in summary.fix and AUDIT_POLICY in summary.fix
    assert all(f.ok for f in report.findings if f.scope == no_summary and f.item != "account_summary")
    text = format_report(report)
    assert "2 problem(s) to fix before a run." in text
    assert f"{no_summary}" in text and "account_summary" in text and "MISSING" in text


def test_a_missing_bucket_is_named(emulator, configured, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_IAM_AUDIT_BUCKET", f"missing-{uuid.uuid4().hex[:8]}")
    report = run_preflight()
    found = by_scope(report)
    assert not found[("bucket", "list")].ok and "does not exist" in found[("bucket", "list")].detail
    assert "create the bucket" in found[("bucket", "list")].fix
    assert ("bucket", "write") not in found  # nothing written anywhere else


def test_a_read_only_database_is_named(emulator, configured, postgres, database, monkeypatch):
    login = f"ro_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.conninfo(database), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN")
        conn.execute(f"ALTER ROLE {login} SET default_transaction_read_only = on")
        conn.execute(f"REVOKE CREATE ON SCHEMA public FROM {login}")
    conn_json = json.loads(postgres.airflow_conn_json(database))
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", json.dumps({**conn_json, "login": login}))
    report = run_preflight()
    found = by_scope(report)
    assert found[("postgres", "connect")].ok
    writable = found[("postgres", "writable")]
    assert not writable.ok and "default_transaction_read_only" in writable.fix
    assert not found[("postgres", "create in schema")].ok
    assert f"GRANT CREATE ON SCHEMA public TO {login}" in found[("postgres", "create in schema")].fix
