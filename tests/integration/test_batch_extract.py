"""Several accounts per extract task (Variable iam_audit_accounts_per_task): one account's failure is
recorded for that account alone, the others are stored, and a retry extracts only what is missing."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import pytest

from iam_audit import tasks
from iam_audit.config import AuditConfig
from iam_audit.ingest import layout
from iam_audit.ingest.extract_accounts import AccountExtractionError, PermanentExtractionError
from iam_audit.ingest.raw_store import S3RawStore
from iam_audit.plan import RunPlan
from tests.conftest import account_of

SNAPSHOT = "2026-11-03"


def plan(bucket: str, run_id: str = "batch-run-1", per_task: int = 3) -> RunPlan:
    return RunPlan(mode="live", snapshot_date=date.fromisoformat(SNAPSHOT), run_id=run_id,
                   config=AuditConfig(bucket=bucket, role_name="IamAuditReadOnly", prefix="iam",
                                      accounts_per_task=per_task))


def members(emulator) -> list[dict]:
    return [{"account_id": a["id"], "account_name": a.get("name") or ""} for a in emulator.manifest["accounts"]]


def manifest(bucket: str, account_id: str) -> dict:
    return json.loads(S3RawStore(bucket).get(layout.manifest_key("iam", SNAPSHOT, account_id)))


def audited_accounts(emulator) -> set[str]:
    """Accounts whose own IAM was called (the calls made with their assumed-role credentials)."""
    return {c["account_id"] for c in emulator.calls() if c["service"] == "iam" and c["count"]}


def test_batches_and_their_labels(emulator):
    accounts = members(emulator)
    assert [len(b) for b in tasks.batch_accounts(plan("b", per_task=3), accounts)] == [3, 1]
    assert tasks.batch_accounts(plan("b", per_task=1), accounts) == [[a] for a in accounts]
    label = tasks.batch_label(accounts[:3])
    assert label.startswith("3 accounts: ") and all(a["account_id"] in label for a in accounts[:3])
    many = [{"account_id": f"{i:012d}"} for i in range(40)]
    assert len(tasks.batch_label(many)) <= 250 and "000000000000" in tasks.batch_label(many)


def test_a_transient_failure_fails_only_its_account_and_the_retry_extracts_only_it(emulator, bucket, monkeypatch):
    monkeypatch.setenv("IAM_AUDIT_AWS_MAX_ATTEMPTS", "1")
    accounts = members(emulator)[:3]
    flaky = accounts[1]["account_id"]
    emulator.set_faults([{"account_id": flaky, "service": "iam", "action": "GetAccountSummary",
                          "error": "Throttling"}])
    with pytest.raises(tasks.BatchExtractionError) as err:
        tasks.extract_batch(plan(bucket), accounts, "aws_default", first_try=True)
    message = str(err.value)
    assert f"account {flaky}:" in message and "1 of 3 accounts" in message
    assert not any(f"account {a['account_id']}:" in message for a in accounts if a["account_id"] != flaky)
    for account in accounts:
        stored = manifest(bucket, account["account_id"])
        statuses = {d["status"] for d in stored["datasets"].values()}
        assert stored["run_id"] == "batch-run-1"
        assert statuses == ({"ok", "error"} if account["account_id"] == flaky else {"ok"}), account

    # A batch of one is the same path: its retry re-extracts an account stored incomplete, and fails with
    # the account's own (retryable) error rather than a batch's.
    emulator.reset_calls()
    with pytest.raises(AccountExtractionError) as err:
        tasks.extract_batch(plan(bucket), [accounts[1]], "aws_default", first_try=False)
    assert not isinstance(err.value, PermanentExtractionError) and str(err.value).startswith(f"account {flaky}:")
    assert audited_accounts(emulator) == {flaky}

    emulator.clear_faults()
    emulator.reset_calls()
    result = tasks.extract_batch(plan(bucket), accounts, "aws_default", first_try=False)
    assert result == {"accounts": 3, "extracted": 1}
    assert audited_accounts(emulator) == {flaky}
    assert {d["status"] for d in manifest(bucket, flaky)["datasets"].values()} == {"ok"}

    # ... and its retry skips an account stored complete, its XCom still that account's summary.
    emulator.reset_calls()
    summary = tasks.extract_batch(plan(bucket), [accounts[0]], "aws_default", first_try=False)
    assert audited_accounts(emulator) == set()
    assert summary == {"account_id": accounts[0]["account_id"], "datasets_failed": [],
                       "datasets_ok": len(manifest(bucket, accounts[0]["account_id"])["datasets"]),
                       "manifest_key": layout.manifest_key("iam", SNAPSHOT, accounts[0]["account_id"])}

    # A new run of the same date extracts every account again (reruns are idempotent, never stale).
    emulator.reset_calls()
    tasks.extract_batch(plan(bucket, run_id="batch-run-2"), accounts, "aws_default", first_try=False)
    assert audited_accounts(emulator) == {a["account_id"] for a in accounts}


def test_a_permanent_failure_is_not_retried_and_names_only_its_account(emulator, bucket):
    from airflow.sdk.exceptions import AirflowFailException

    accounts = members(emulator)
    denied = account_of(emulator.manifest, "none")
    emulator.set_faults([{"service": "sts", "action": "AssumeRole", "error": "AccessDenied",
                          "target_account_id": denied}])
    with pytest.raises(AirflowFailException) as err:
        tasks.extract_batch(plan(bucket, per_task=len(accounts)), accounts, "aws_default")
    assert not isinstance(err.value, tasks.BatchExtractionError)
    message = str(err.value)
    assert f"account {denied}: could not assume" in message and f"1 of {len(accounts)} accounts" in message
    for account in accounts:
        statuses = {d["status"] for d in manifest(bucket, account["account_id"])["datasets"].values()}
        assert statuses == ({"error"} if account["account_id"] == denied else {"ok"}), account


def test_replay_extracts_nothing_and_names_the_accounts_without_a_snapshot():
    from airflow.sdk.exceptions import AirflowSkipException

    replay = replace(plan("never-read"), mode="replay")
    stored, missing = {"account_id": "111111111111"}, {"account_id": "222222222222", "missing_snapshot": True}
    with pytest.raises(AirflowSkipException) as one:
        tasks.extract(replay, missing, "aws_default")
    assert str(one.value) == f"account 222222222222: no stored snapshot for {SNAPSHOT}: skipped, no verdicts written"
    with pytest.raises(AirflowSkipException) as batch:
        tasks.extract_batch(replay, [stored, missing], "aws_default")
    assert str(batch.value).startswith(f"replay of {SNAPSHOT}: data comes from the stored snapshot")
    assert str(one.value) in str(batch.value) and "111111111111" not in str(batch.value)
