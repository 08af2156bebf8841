from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "root_hardware_mfa"
IDS = {"cis_v1.2.0": "1.14", "cis_v3.0.0": "1.6"}
HARDWARE, VIRTUAL_SERIAL, VIRTUAL_ARN, NO_MFA, OTHER_USERS_VIRTUAL, NO_MFA_STALE_DEVICE, MISSING = (
    f"{n:012d}" for n in range(1, 8)
)


def test_root_mfa_must_be_hardware(db):
    s = Snapshot(db)
    s.account(HARDWARE).account_summary(HARDWARE, mfa=1)
    s.account(VIRTUAL_SERIAL).account_summary(VIRTUAL_SERIAL, mfa=1)
    s.virtual_mfa(VIRTUAL_SERIAL, "root-account-mfa-device", user_arn=f"arn:aws:iam::{VIRTUAL_SERIAL}:root")
    s.account(VIRTUAL_ARN).account_summary(VIRTUAL_ARN, mfa=1)
    s.virtual_mfa(VIRTUAL_ARN, "my-phone", user_arn=f"arn:aws:iam::{VIRTUAL_ARN}:root")
    s.account(NO_MFA).account_summary(NO_MFA, mfa=0)
    s.account(OTHER_USERS_VIRTUAL).account_summary(OTHER_USERS_VIRTUAL, mfa=1)
    s.virtual_mfa(OTHER_USERS_VIRTUAL, "alice", user_arn=f"arn:aws:iam::{OTHER_USERS_VIRTUAL}:user/alice")
    s.virtual_mfa(OTHER_USERS_VIRTUAL, "unassigned")
    s.account(NO_MFA_STALE_DEVICE).account_summary(NO_MFA_STALE_DEVICE, mfa=0)
    s.virtual_mfa(NO_MFA_STALE_DEVICE, "root-account-mfa-device")
    s.account(MISSING, missing={"virtual_mfa_devices": "AccessDenied"}).account_summary(MISSING, mfa=1)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, check_id in IDS.items():
        assert statuses(db, LOGIC, framework) == {
            HARDWARE: "pass",
            VIRTUAL_SERIAL: "fail",
            VIRTUAL_ARN: "fail",
            NO_MFA: "fail",
            OTHER_USERS_VIRTUAL: "pass",
            NO_MFA_STALE_DEVICE: "fail",
            MISSING: "error",
        }
        got = verdicts(db, LOGIC, framework)
        assert "virtual" in got[(framework, check_id, VIRTUAL_SERIAL, VIRTUAL_SERIAL)][1]
        assert "root-account-mfa-device" in got[(framework, check_id, VIRTUAL_SERIAL, VIRTUAL_SERIAL)][1]
        assert "my-phone" in got[(framework, check_id, VIRTUAL_ARN, VIRTUAL_ARN)][1]
        assert "no MFA at all" in got[(framework, check_id, NO_MFA, NO_MFA)][1]
        assert "no MFA at all" in got[(framework, check_id, NO_MFA_STALE_DEVICE, NO_MFA_STALE_DEVICE)][1]
        assert "hardware" in got[(framework, check_id, HARDWARE, HARDWARE)][1]
