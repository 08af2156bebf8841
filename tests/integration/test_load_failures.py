"""Every per-account load failure gives that account 'error' verdicts for the date and leaves the
other accounts loaded: real S3 API (emulator over HTTP), real PostgreSQL, the shipped load path."""

from __future__ import annotations

import hashlib
import json

import pytest
from iam_audit import layout
from iam_audit.database import run_check
from iam_audit.pipeline import load_snapshot, stored_accounts
from iam_audit.raw_store import S3RawStore

from tests.conftest import account_of
from tests.integration.conftest import s3
from tests.integration.test_storage_and_load_faults import SNAPSHOT, connect_to, extract

LOGIC = "console_users_mfa"   # needs credential_report


@pytest.fixture()
def two_accounts(emulator, bucket):
    weak, strong = account_of(emulator.manifest, "weak"), account_of(emulator.manifest, "strong")
    for account_id in (weak, strong):
        extract(emulator, bucket, account_id, "run-1")
    return weak, strong


def get_manifest(emulator, bucket, account_id) -> dict:
    key = layout.manifest_key("iam", SNAPSHOT, account_id)
    return json.loads(s3(emulator).get_object(Bucket=bucket, Key=key)["Body"].read())


def put_manifest(emulator, bucket, account_id, manifest: dict) -> None:
    s3(emulator).put_object(Bucket=bucket, Key=layout.manifest_key("iam", SNAPSHOT, account_id),
                            Body=json.dumps(manifest).encode())


def load_and_check(emulator, bucket, postgres, database, accounts, mode="live"):
    report = load_snapshot(S3RawStore(bucket), "iam", SNAPSHOT, [{"account_id": a} for a in accounts],
                           connect_to(postgres, database), mode=mode, run_id="run-1", workers=1)
    conn = postgres.connect(database)
    try:
        run_check(conn, LOGIC, SNAPSHOT)
        verdicts = {}
        for account_id, status, reason in conn.execute(
                "SELECT account_id, status, reason FROM aws_policy_results WHERE snapshot_date = %s",
                (SNAPSHOT,)).fetchall():
            verdicts.setdefault(account_id, []).append((status, reason))
    finally:
        conn.close()
    return report, verdicts


def assert_failed_and_other_loaded(report, verdicts, failed, other, cause):
    assert failed in report.failed and cause in report.failed[failed], report.failed
    assert other in report.loaded and other not in report.failed
    assert {s for s, _ in verdicts[failed]} == {"error"}
    assert all("the raw snapshot could not be loaded" in r and cause in r for _, r in verdicts[failed])
    assert "error" not in {s for s, _ in verdicts[other]} and verdicts[other]


def test_denied_object_gives_error_verdicts_for_that_account_only(emulator, bucket, two_accounts, db,
                                                                  postgres, database):
    weak, strong = two_accounts
    # workers=1: the first GetObject is the first account's manifest
    emulator.set_faults([{"service": "s3", "action": "GetObject", "error": "AccessDenied", "times": 1}])
    report, verdicts = load_and_check(emulator, bucket, postgres, database, [weak, strong])
    assert_failed_and_other_loaded(report, verdicts, weak, strong, "AccessDenied")


def test_kms_failure_gives_error_verdicts(emulator, bucket, two_accounts, db, postgres, database):
    weak, strong = two_accounts
    emulator.set_faults([{"service": "s3", "action": "GetObject", "error": "KMS.DisabledException",
                          "message": "arn:aws:kms:us-east-1:1:key/x is disabled.", "status": 400, "times": 1}])
    report, verdicts = load_and_check(emulator, bucket, postgres, database, [weak, strong])
    assert_failed_and_other_loaded(report, verdicts, weak, strong, "KMS.DisabledException")


def test_checksum_mismatch_gives_error_verdicts(emulator, bucket, two_accounts, db, postgres, database):
    weak, strong = two_accounts
    key = layout.dataset_key("iam", SNAPSHOT, weak, "credential_report")
    s3(emulator).put_object(Bucket=bucket, Key=key, Body=layout.encode({"Content": "", "tampered": True}))
    report, verdicts = load_and_check(emulator, bucket, postgres, database, [weak, strong])
    assert_failed_and_other_loaded(report, verdicts, weak, strong, "SHA-256")
    assert f"s3://{bucket}/{key}" in report.failed[weak]


def test_manifest_records_sha256_of_every_object(emulator, bucket, two_accounts):
    weak, _ = two_accounts
    manifest = get_manifest(emulator, bucket, weak)
    assert manifest["format"] >= 2
    for entry in manifest["datasets"].values():
        if entry["status"] == "ok":
            blob = s3(emulator).get_object(Bucket=bucket, Key=entry["key"])["Body"].read()
            assert entry["sha256"] == hashlib.sha256(blob).hexdigest()


def test_unexpected_shape_gives_error_verdicts(emulator, bucket, two_accounts, db, postgres, database):
    weak, strong = two_accounts
    key = layout.dataset_key("iam", SNAPSHOT, weak, "authorization_details")
    blob = layout.encode([["not", "the", "shape"]])
    s3(emulator).put_object(Bucket=bucket, Key=key, Body=blob)
    manifest = get_manifest(emulator, bucket, weak)
    manifest["datasets"]["authorization_details"]["sha256"] = hashlib.sha256(blob).hexdigest()
    put_manifest(emulator, bucket, weak, manifest)
    report, verdicts = load_and_check(emulator, bucket, postgres, database, [weak, strong])
    # the transform refuses the shape (MalformedPayload): the account's other data sets load, and
    # every check needing the malformed data sets says 'error', naming them
    assert weak in report.loaded and not report.failed
    assert "error" not in {s for s, _ in verdicts[weak]}  # console_users_mfa needs only the credential report
    conn = postgres.connect(database)
    try:
        run_check(conn, "no_full_admin_policies", SNAPSHOT)
        rows = conn.execute("SELECT account_id, status, reason FROM aws_policy_results WHERE snapshot_date = %s "
                            "AND control_logic = 'no_full_admin_policies'", (SNAPSHOT,)).fetchall()
    finally:
        conn.close()
    weak_rows = [(s, r) for a, s, r in rows if a == weak]
    assert weak_rows and {s for s, _ in weak_rows} == {"error"}
    assert all("malformed" in r and "authorization_details" in r for _, r in weak_rows), weak_rows
    assert "error" not in {s for a, s, _ in rows if a == strong} and any(a == strong for a, _, _ in rows)


def test_stray_key_in_replay_gives_error_verdicts(emulator, bucket, two_accounts, db, postgres, database):
    weak, strong = two_accounts
    manifest = get_manifest(emulator, bucket, weak)
    # the weak account's manifest points at the strong account's (clean) credential report
    entry = get_manifest(emulator, bucket, strong)["datasets"]["credential_report"]
    manifest["datasets"]["credential_report"] = entry
    put_manifest(emulator, bucket, weak, manifest)
    # and a manifest outside any account folder is ignored, not loaded as an account
    s3(emulator).put_object(Bucket=bucket, Key=f"iam/snapshot_date={SNAPSHOT}/account_id=junk/_manifest.json",
                            Body=b"{}")
    accounts = [a["account_id"] for a in stored_accounts(S3RawStore(bucket), "iam", SNAPSHOT)]
    assert accounts == sorted([weak, strong])
    report, verdicts = load_and_check(emulator, bucket, postgres, database, accounts, mode="replay")
    assert_failed_and_other_loaded(report, verdicts, weak, strong, "stray key")


def test_rows_refused_by_the_database_fail_that_account_only(emulator, bucket, two_accounts, db, postgres,
                                                             database):
    weak, strong = two_accounts
    db.execute(f"ALTER TABLE iam_stage.credential_report ADD CONSTRAINT refuse_weak "
               f"CHECK (account_id <> '{weak}')")
    db.commit()
    report, verdicts = load_and_check(emulator, bucket, postgres, database, [weak, strong])
    assert_failed_and_other_loaded(report, verdicts, weak, strong, "CheckViolation")


def test_failed_load_replaces_the_accounts_earlier_rows_of_the_date(emulator, bucket, two_accounts, db,
                                                                    postgres, database):
    weak, strong = two_accounts
    report, verdicts = load_and_check(emulator, bucket, postgres, database, [weak, strong])
    assert not report.failed and "error" not in {s for s, _ in verdicts[weak]}
    key = layout.dataset_key("iam", SNAPSHOT, weak, "credential_report")
    blob = s3(emulator).get_object(Bucket=bucket, Key=key)["Body"].read()
    s3(emulator).put_object(Bucket=bucket, Key=key, Body=blob[: len(blob) // 2])
    report, verdicts = load_and_check(emulator, bucket, postgres, database, [weak, strong])
    # the earlier passes of the date are gone: the account says error, never its old verdicts
    assert_failed_and_other_loaded(report, verdicts, weak, strong, "SHA-256")
    assert db.execute("SELECT count(*) FROM iam_stage.users WHERE account_id = %s", (weak,)).fetchone()[0] == 0
