"""The demo organisation's weak account shows what IH.10 and IH.3 exist for: a role that escalates
only through an AWS-managed policy, and an open trust with a condition that binds nobody.

The emulator's seed runs in-process (moto), its GetAccountAuthorizationDetails goes through the
real loader, and the real checks judge it."""

import hashlib
import json
from datetime import UTC, datetime

import boto3
import pytest

from iam_audit.database import run_check
from iam_audit.ingest import layout
from iam_audit.ingest.extract import get_authorization_details
from iam_audit.ingest.load import prepare_account, write_account

from .staging import AS_OF, SNAPSHOT, verdicts
from .test_fail_closed import PREFIX, MemoryStore

moto = pytest.importorskip("moto")
ACCOUNT = "123456789012"  # moto's default account


def weak_account_details(monkeypatch) -> dict:
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    with moto.mock_aws():
        iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
        iam.list_roles()  # creates the account's backend
        from iam_audit_dev.emulator.seed_hygiene import seed_hygiene

        seed_hygiene(ACCOUNT, "weak", datetime.now(UTC))
        return json.loads(json.dumps(get_authorization_details(iam), default=str))


def test_weak_demo_account_escalates_through_an_aws_managed_policy_and_trusts_anyone(db, monkeypatch):
    store = MemoryStore()
    key = layout.dataset_key(PREFIX, SNAPSHOT, ACCOUNT, "authorization_details")
    store.objects[key] = layout.encode(weak_account_details(monkeypatch))
    store.objects[layout.manifest_key(PREFIX, SNAPSHOT, ACCOUNT)] = json.dumps({
        "format": 2, "account_id": ACCOUNT, "account_name": "demo-weak", "extracted_at": AS_OF.isoformat(),
        "run_id": "r1", "datasets": {"authorization_details": {
            "status": "ok", "key": key, "sha256": hashlib.sha256(store.objects[key]).hexdigest()}}}).encode()
    write_account(db, SNAPSHOT, prepare_account(store, PREFIX, SNAPSHOT, ACCOUNT))
    db.commit()
    role = f"arn:aws:iam::{ACCOUNT}:role/"
    for logic in ("hygiene_principal_escalation", "hygiene_privilege_escalation", "hygiene_role_trusts_anyone"):
        run_check(db, logic, SNAPSHOT)
    ih10 = verdicts(db, "hygiene_principal_escalation", "iam_hygiene")
    status, reason = ih10[("iam_hygiene", "IH.10", ACCOUNT, role + "batch-launcher")]
    assert status == "fail" and "from AWS-managed policy AmazonEC2FullAccess" in reason
    assert "iam:PassRole from inline policy pass-any-role" in reason
    # the role's own inline policy is harmless alone: only the per-principal view finds it
    ih1 = verdicts(db, "hygiene_privilege_escalation", "iam_hygiene")
    assert ih1[("iam_hygiene", "IH.1", ACCOUNT, role + "batch-launcher#pass-any-role")][0] == "pass"
    ih3 = verdicts(db, "hygiene_role_trusts_anyone", "iam_hygiene")
    status, reason = ih3[("iam_hygiene", "IH.3", ACCOUNT, role + "metrics-exporter")]
    assert status == "fail" and "(aws:SecureTransport) do not restrict who calls" in reason
