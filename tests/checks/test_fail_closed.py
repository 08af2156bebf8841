"""Malformed or drifting raw data never becomes 'pass'.

1. A raw snapshot whose payloads drifted (renamed credential report column, missing
   top-level keys) is loaded by the real loader: the data sets are recorded as
   malformed, and every check that needs them gives 'error' naming the field.
2. Every check is fed NULL in each staging column it reads, one column at a time
   (columns enumerated from the check files and the SQL functions they call): a
   resource that failed never becomes 'pass' or disappears, and no new 'pass' appears.
"""

from __future__ import annotations

import json

from iam_audit import layout
from iam_audit.database import run_check
from iam_audit.load import prepare_account, write_account
from iam_audit.raw_store import RawObjectMissing

from .staging import AS_OF, SNAPSHOT, verdicts

A = "111111111111"
PREFIX = "iam"

# ---- 1. drifted raw payloads through the real loader ------------------------------------------

HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,"
    "cert_2_active,cert_2_last_rotated"
)
ADMIN_NO_MFA = (
    f"admin,arn:aws:iam::{A}:user/admin,2025-01-01T00:00:00+00:00,true,2026-10-30T00:00:00+00:00,"
    "2025-01-01T00:00:00+00:00,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
)


class MemoryStore:
    """Raw objects by key, as S3RawStore serves them (the loader under test is real)."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}

    def url(self, key: str) -> str:
        return f"s3://raw/{key}"

    def get(self, key: str) -> bytes:
        if key not in self.objects:
            raise RawObjectMissing(self.url(key))
        return self.objects[key]


def write_snapshot(store: MemoryStore, payloads: dict) -> None:
    datasets = {}
    for dataset, payload in payloads.items():
        key = layout.dataset_key(PREFIX, SNAPSHOT, A, dataset)
        store.objects[key] = layout.encode(payload)
        datasets[dataset] = {"status": "ok", "key": key}
    manifest = {"account_id": A, "account_name": "drift", "extracted_at": AS_OF.isoformat(), "run_id": "r1",
                "datasets": datasets}
    store.objects[layout.manifest_key(PREFIX, SNAPSHOT, A)] = json.dumps(manifest).encode()


def test_drifted_payloads_become_errors_naming_the_field(db):
    store = MemoryStore()
    write_snapshot(store, {
        # renamed column: before, password_enabled read as NULL and IH.5 passed the console admin
        "credential_report": {"GeneratedTime": AS_OF.isoformat(),
                              "Content": "\n".join([HEADER.replace("password_enabled", "console_password"),
                                                    ADMIN_NO_MFA])},
        # no Policies / no RoleDetailList: before, "nothing attached" and cloudshell_full_access passed
        "authorization_details": {"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": []},
        # a renamed list: before, "no virtual device" and root_hardware_mfa passed
        "virtual_mfa_devices": {"Devices": [{"SerialNumber": f"arn:aws:iam::{A}:mfa/root-account-mfa-device"}]},
        "account_summary": {"SummaryMap": {"AccountMFAEnabled": 1, "AccountAccessKeysPresent": 0}},
        "password_policy": {"PasswordPolicy": {"MinimumPasswordLength": 14}},
    })
    prepared = prepare_account(store, PREFIX, SNAPSHOT, A)
    status = {row[0]: row[1:3] for row in prepared.status_rows}
    assert status["credential_report"] == ("error", "MalformedPayload")
    assert status["authorization_details"] == ("error", "MalformedPayload")
    assert status["password_policy"][0] == "ok"  # the rest of the account still loads
    write_account(db, SNAPSHOT, prepared)
    db.commit()
    expected = {
        "hygiene_console_admin_without_mfa": "password_enabled",
        "console_users_mfa": "password_enabled",
        "cloudshell_full_access": "has no Policies",
        "support_role": "has no Policies",
        "root_hardware_mfa": "has no VirtualMFADevices",
    }
    for logic, field in expected.items():
        run_check(db, logic, SNAPSHOT)
        got = verdicts(db, logic)
        assert got and {v[0] for v in got.values()} == {"error"}, logic
        for _, reason in got.values():
            assert "malformed" in reason and field in reason, (logic, reason)
    run_check(db, "password_policy_min_length", SNAPSHOT)
    assert {v[0] for v in verdicts(db, "password_policy_min_length").values()} == {"pass"}
