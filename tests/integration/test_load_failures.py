"""Every per-account load failure gives that account 'error' verdicts for the date and leaves the
other accounts loaded: real S3 API (emulator over HTTP), real PostgreSQL, the shipped load path."""

from __future__ import annotations

import hashlib
import json

import pytest

from iam_audit.database import run_check
from iam_audit.ingest import layout
from iam_audit.ingest.discover import stored_accounts
from iam_audit.ingest.raw_store import S3RawStore
from iam_audit.ingest.staging import load_snapshot
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


# ---- evidence that cannot be rewritten ----------------------------------------------------------

def rewrite_dataset(emulator, bucket, account_id, dataset, payload, manifest_format=None):
    """What a principal that can write the bucket could do: replace a data set and fix the manifest."""
    blob = layout.encode(payload)
    key = layout.dataset_key("iam", SNAPSHOT, account_id, dataset)
    s3(emulator).put_object(Bucket=bucket, Key=key, Body=blob)
    manifest = get_manifest(emulator, bucket, account_id)
    manifest["datasets"][dataset]["sha256"] = hashlib.sha256(blob).hexdigest()
    if manifest_format == 1:
        manifest["format"] = 1
        for entry in manifest["datasets"].values():
            entry.pop("sha256", None)
    put_manifest(emulator, bucket, account_id, manifest)
    return f"s3://{bucket}/{layout.manifest_key('iam', SNAPSHOT, account_id)}"


def staged_user_names(postgres, database, account_id) -> set[str]:
    with postgres.connect(database) as conn:
        return {r[0] for r in conn.execute("SELECT user_name FROM iam_stage.credential_report "
                                           "WHERE snapshot_date = %s AND account_id = %s",
                                           (SNAPSHOT, account_id)).fetchall()}


@pytest.mark.parametrize("manifest_format", [2, 1])
def test_a_replay_of_evidence_rewritten_after_the_live_load_is_refused_naming_the_manifest(
        emulator, bucket, two_accounts, db, postgres, database, manifest_format):
    weak, strong = two_accounts
    report, _ = load_and_check(emulator, bucket, postgres, database, [weak, strong])
    assert not report.failed
    before = staged_user_names(postgres, database, weak)
    assert before
    # the data set and its manifest rewritten consistently (format 1: the checksums dropped as well)
    empty_report = {"Content": "\n".join(["user,arn"]), "GeneratedTime": "2026-11-01T00:00:00+00:00"}
    url = rewrite_dataset(emulator, bucket, weak, "credential_report", empty_report, manifest_format)
    report, verdicts = load_and_check(emulator, bucket, postgres, database, [weak, strong], mode="replay")
    assert_failed_and_other_loaded(report, verdicts, weak, strong, "iam_audit_evidence_digests")
    assert url in report.failed[weak] and "rewritten" in report.failed[weak]


def test_a_manifest_without_checksums_is_refused_unless_opted_in(emulator, bucket, two_accounts, db, postgres,
                                                                 database):
    """A date never loaded live here has no recorded digest: format 1 (no SHA-256) is still refused."""
    weak, strong = two_accounts
    manifest = get_manifest(emulator, bucket, weak)
    manifest["format"] = 1
    for entry in manifest["datasets"].values():
        entry.pop("sha256", None)
    put_manifest(emulator, bucket, weak, manifest)
    report, verdicts = load_and_check(emulator, bucket, postgres, database, [weak, strong], mode="replay")
    assert_failed_and_other_loaded(report, verdicts, weak, strong, "iam_audit_allow_unhashed_manifests")
    assert "format 1" in report.failed[weak]
    opted_in = load_snapshot(S3RawStore(bucket), "iam", SNAPSHOT, [{"account_id": weak}],
                             connect_to(postgres, database), mode="replay", workers=1, allow_unhashed=True)
    assert weak in opted_in.loaded and not opted_in.failed


def test_a_gzip_bomb_fails_that_account_naming_the_object(emulator, bucket, two_accounts, db, postgres, database,
                                                          monkeypatch):
    import gzip

    weak, strong = two_accounts
    monkeypatch.setenv("IAM_AUDIT_MAX_OBJECT_MIB", "1")
    # 20 MiB of JSON in about 20 KiB: inflating it whole is what the cap prevents
    bomb = gzip.compress(b'{"Content": "' + b"a" * (20 * 1024 * 1024) + b'"}')
    assert len(bomb) < 64 * 1024
    key = layout.dataset_key("iam", SNAPSHOT, weak, "credential_report")
    s3(emulator).put_object(Bucket=bucket, Key=key, Body=bomb)
    manifest = get_manifest(emulator, bucket, weak)
    manifest["datasets"]["credential_report"]["sha256"] = hashlib.sha256(bomb).hexdigest()
    put_manifest(emulator, bucket, weak, manifest)
    report, verdicts = load_and_check(emulator, bucket, postgres, database, [weak, strong])
    assert_failed_and_other_loaded(report, verdicts, weak, strong, "gzip bomb")
    assert f"s3://{bucket}/{key}" in report.failed[weak]
    # an object larger than the cap before decompression is refused before its body is read
    s3(emulator).put_object(Bucket=bucket, Key=key, Body=b"\0" * (1024 * 1024 + 1))
    report, _ = load_and_check(emulator, bucket, postgres, database, [weak, strong])
    assert f"s3://{bucket}/{key} holds 1048577 bytes" in report.failed[weak]


def test_an_account_folder_flooded_with_objects_is_refused_naming_it(emulator, bucket, two_accounts):
    from iam_audit.ingest.raw_store import RawStoreError

    weak, _ = two_accounts
    folder = layout.account_prefix("iam", SNAPSHOT, weak)
    for i in range(20):
        s3(emulator).put_object(Bucket=bucket, Key=f"{folder}junk-{i}", Body=b"x")
    with pytest.raises(RawStoreError, match=f"account_id={weak}.*more objects than a snapshot writes"):
        stored_accounts(S3RawStore(bucket), "iam", SNAPSHOT)


def test_the_organisation_list_is_covered_by_the_manifests_and_the_live_loads_digest(
        emulator, bucket, db, postgres, database):
    from iam_audit.ingest.extract_accounts import extract_one
    from iam_audit.ingest.load import sha256
    from iam_audit.ingest.staging import EvidenceMismatch, load_organization
    from tests.integration.test_storage_and_load_faults import target

    weak = account_of(emulator.manifest, "weak")
    store = S3RawStore(bucket)
    org_key = layout.organization_key("iam", SNAPSHOT)
    organisation = [{"Id": weak, "Name": "weak", "State": "ACTIVE"}]
    blob = layout.encode(organisation)
    store.put(org_key, blob)
    from iam_audit.config import AuditConfig

    extract_one(target(emulator), AuditConfig(bucket=bucket), store, SNAPSHOT,
                {"account_id": weak, "account_name": "weak", "organization_sha256": sha256(blob)}, "run-1")
    manifest = get_manifest(emulator, bucket, weak)
    assert manifest["organization"] == {"key": org_key, "sha256": sha256(blob)}
    connect = connect_to(postgres, database)
    report = load_snapshot(store, "iam", SNAPSHOT, [{"account_id": weak}], connect, run_id="run-1", workers=1)
    assert report.organization_sha256 == {sha256(blob)}
    assert load_organization(store, "iam", SNAPSHOT, connect, manifest_hashes=report.organization_sha256,
                             run_id="run-1") == 1
    # an account outside the organisation added to the list, as a trust check would then believe
    tampered = layout.encode([*organisation, {"Id": "999988887777", "Name": "attacker", "State": "ACTIVE"}])
    store.put(org_key, tampered)
    url = f"s3://{bucket}/{org_key}"
    with pytest.raises(EvidenceMismatch, match=f"{url} does not match the SHA-256 recorded in the manifests"):
        load_organization(store, "iam", SNAPSHOT, connect, manifest_hashes=report.organization_sha256)
    with postgres.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM iam_stage.organization_accounts").fetchone()[0] == 0
    # manifests rewritten too (no organisation entry): the digest of the live load still refuses it
    with pytest.raises(EvidenceMismatch, match=f"{url} differs from the object the live load"):
        load_organization(store, "iam", SNAPSHOT, connect, mode="replay")
