"""Changed findings to Security Hub through the emulator over HTTP: AWS's batch limit, throttling,
refused findings, idempotent ids and the ledger that makes every change go exactly until accepted."""

import itertools
from datetime import UTC, datetime

import boto3
import pytest
from bi.results import D1, D2, D3, A, B, history, put, user

from iam_audit.aws import client_config
from iam_audit.export.securityhub import Receiver, SecurityHubExportError, send

MANAGEMENT = "123456789012"          # the emulator's account for access keys it does not know
_regions = itertools.count(1)


@pytest.fixture()
def hub(emulator):
    """A Security Hub enabled in a region of its own (the emulator's state outlives a test)."""
    region = f"ap-southeast-{next(_regions)}"
    client = boto3.client("securityhub", endpoint_url=emulator.url, region_name=region,
                          aws_access_key_id="AKIASECURITYHUBTEST1", aws_secret_access_key="x" * 20,
                          config=client_config(max_attempts=5))
    client.enable_security_hub()
    return client, Receiver(MANAGEMENT, region)


@pytest.fixture()
def ledger(postgres, database):
    conn = postgres.connect(database, autocommit=True)
    yield conn
    conn.close()


def stored(client) -> dict:
    pages = client.get_paginator("get_findings").paginate()
    return {f["Id"]: f for page in pages for f in page["Findings"]}


def at(day) -> datetime:
    return datetime(day.year, day.month, day.day, 6, tzinfo=UTC)


def batch_calls(emulator) -> int:
    return sum(c["count"] for c in emulator.calls() if c["action"] == "BatchImportFindings")


def test_changes_only_resolved_archived_vanished_and_replays(db, ledger, hub, emulator):
    client, receiver = hub
    history(db)
    first = send(db, ledger, client, D1, receiver, "run-1", at(D1))
    found = stored(client)
    # D1: alice, carol, frank fail in A; gina passes in B and is never sent
    assert first.sent == 3 and sorted(f["Resources"][0]["Id"] for f in found.values()) == [
        user(A, "alice"), user(A, "carol"), user(A, "frank")]
    alice = found[f"iam-audit/console_users_mfa/{A}/{user(A, 'alice')}"]
    assert (alice["Compliance"]["Status"], alice["RecordState"], alice["AwsAccountId"]) == ("FAILED", "ACTIVE",
                                                                                          MANAGEMENT)
    assert alice["ProductFields"]["iam-audit/AccountId"] == A
    assert alice["Compliance"]["RelatedRequirements"] == ["CIS AWS Foundations Benchmark v3.0.0/1.10"]

    emulator.reset_calls()
    assert send(db, ledger, client, D1, receiver, "run-1b", at(D1)).sent == 0          # a rerun: no change
    assert batch_calls(emulator) == 0

    second = send(db, ledger, client, D2, receiver, "run-2", at(D2))
    found = stored(client)
    state = {f["Resources"][0]["Id"]: (f["Compliance"]["Status"], f["RecordState"]) for f in found.values()}
    assert state == {
        user(A, "alice"): ("FAILED", "ACTIVE"),               # unchanged, not re-sent
        user(A, "bob"): ("FAILED", "ACTIVE"),                 # newly failing
        user(A, "carol"): ("PASSED", "ARCHIVED"),             # resolved
        user(A, "frank"): ("NOT_AVAILABLE", "ARCHIVED"),      # absent from a complete evaluation: gone
        f"AWS::::Account:{B}": ("NOT_AVAILABLE", "ACTIVE"),   # B's error verdict: not a pass
    }
    assert second.sent == 4 and len(found) == 5               # one Security Hub finding per id, ever


def test_more_than_a_hundred_changes_go_in_batches_the_emulator_accepts(db, ledger, hub, emulator):
    client, receiver = hub
    for n in range(250):
        put(db, D3, A, user(A, f"u{n:03}"), "fail")
    db.commit()
    emulator.reset_calls()
    assert send(db, ledger, client, D3, receiver, "run", at(D3)).sent == 250
    assert batch_calls(emulator) == 3 and len(stored(client)) == 250


def test_the_emulator_refuses_a_batch_of_more_than_a_hundred(hub):
    """The limit the batching above respects is real in the emulator (botocore checks only the minimum)."""
    client, receiver = hub
    finding = {"SchemaVersion": "2018-10-08", "ProductArn": receiver.product_arn, "GeneratorId": "g",
               "AwsAccountId": MANAGEMENT, "CreatedAt": "2026-11-01T00:00:00Z", "UpdatedAt": "2026-11-01T00:00:00Z",
               "Title": "t", "Description": "d", "Resources": [{"Type": "Other", "Id": "r"}]}
    with pytest.raises(client.exceptions.InvalidInputException, match="between 1 and 100"):
        client.batch_import_findings(Findings=[{**finding, "Id": str(n)} for n in range(101)])


def test_throttling_is_retried_without_duplicates(db, ledger, hub, emulator):
    """Security Hub throttles with LimitExceededException, HTTP 429 (botocore's model of BatchImportFindings)."""
    client, receiver = hub
    history(db)
    emulator.set_faults([{"account_id": MANAGEMENT, "service": "securityhub", "action": "BatchImportFindings",
                          "error": "LimitExceededException", "times": 2}])
    try:
        assert send(db, ledger, client, D3, receiver, "run", at(D3)).sent == 6
    finally:
        emulator.clear_faults()
    assert len(stored(client)) == 6


def test_refused_findings_fail_the_task_and_are_sent_by_the_next_run(db, ledger, hub):
    """A receiver naming another account: AWS refuses each finding (FailedFindings); nothing is recorded
    as sent, the error says so, and the next correct run sends them all."""
    client, receiver = hub
    history(db)
    wrong = Receiver("210987654321", receiver.region)
    with pytest.raises(SecurityHubExportError, match=r"accepted 0 of 6 .* 6 refused.*AwsAccountId"):
        send(db, ledger, client, D3, wrong, "run-1", at(D3))
    assert ledger.execute("SELECT count(*) FROM aws_policy_securityhub_findings").fetchone()[0] == 0
    assert send(db, ledger, client, D3, receiver, "run-2", at(D3)).sent == 6


def test_security_hub_not_enabled_fails_at_once_saying_what_to_do(db, ledger, emulator):
    client = boto3.client("securityhub", endpoint_url=emulator.url, region_name="sa-east-1",
                          aws_access_key_id="AKIASECURITYHUBTEST1", aws_secret_access_key="x" * 20)
    history(db)
    with pytest.raises(SecurityHubExportError, match="not enabled in sa-east-1 of account 123456789012"):
        send(db, ledger, client, D3, Receiver(MANAGEMENT, "sa-east-1"), "run", at(D3))


def test_the_shipped_policy_allows_the_import_and_nothing_else(db, ledger, hub, emulator):
    """src/iam_audit/policies/securityhub-import.json enforced by the emulator: the import passes; the same
    credentials may not import through another account's product."""
    from iam_audit.evaluate.policies import load_policy

    client, receiver = hub
    history(db)
    policy = load_policy("securityhub-import.json", Partition="aws", Region=receiver.region,
                         PipelineAccountId=MANAGEMENT)
    emulator.enforce([{"access_key": "AKIASECURITYHUBTEST1", "policies": [policy]}])
    try:
        assert send(db, ledger, client, D3, receiver, "run", at(D3)).sent == 6
        put(db, D3, A, user(A, "zoe"), "fail")
        db.commit()
        other = Receiver(MANAGEMENT, "eu-north-1")
        with pytest.raises(SecurityHubExportError, match="may not call securityhub:BatchImportFindings"):
            send(db, ledger, client, D3, other, "run", at(D3))
    finally:
        emulator.clear_enforcement()
