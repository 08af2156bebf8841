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


ALL_IDS = {"cis_v1.2.0": "1.14", "cis_v1.3.0": "1.6", "cis_v1.4.0": "1.6", "cis_v1.5.0": "1.6",
           "cis_v2.0.0": "1.6", "cis_v3.0.0": "1.6", "cis_v4.0.0": "1.6", "cis_v5.0.0": "1.5",
           "cis_v6.0.0": "2.5", "cis_v7.0.0": "2.6"}
NO_PW_SUMMARY, NO_PW_REPORT, NO_PW_VIRTUAL, UNKNOWN_PW, HAS_PW, NO_REPORT = (f"{n:012d}" for n in range(11, 17))


def test_root_without_password_passes_from_v5(db):
    """v5.0.0/v6.0.0: no root password makes hardware MFA "neither possible nor necessary"."""
    s = Snapshot(db)
    s.account(NO_PW_SUMMARY).account_summary(NO_PW_SUMMARY, mfa=0, password_present=0)
    s.user(NO_PW_SUMMARY, "<root_account>", is_root=True)
    s.account(NO_PW_REPORT).account_summary(NO_PW_REPORT, mfa=0, password_present=None)
    s.user(NO_PW_REPORT, "<root_account>", is_root=True, password_enabled=False)
    s.account(NO_PW_VIRTUAL).account_summary(NO_PW_VIRTUAL, mfa=1, password_present=0)
    s.virtual_mfa(NO_PW_VIRTUAL, "root-account-mfa-device", user_arn=f"arn:aws:iam::{NO_PW_VIRTUAL}:root")
    s.account(UNKNOWN_PW).account_summary(UNKNOWN_PW, mfa=0, password_present=None)
    s.user(UNKNOWN_PW, "<root_account>", is_root=True)
    s.account(HAS_PW).account_summary(HAS_PW, mfa=0, password_present=1)
    s.account(NO_REPORT, missing={"credential_report": "ReportInProgress"})
    s.account_summary(NO_REPORT, mfa=0, password_present=0)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, check_id in ALL_IDS.items():
        without = "pass" if framework in {"cis_v5.0.0", "cis_v6.0.0", "cis_v7.0.0"} else "fail"
        assert statuses(db, LOGIC, framework) == {
            NO_PW_SUMMARY: without, NO_PW_REPORT: without, NO_PW_VIRTUAL: without,
            UNKNOWN_PW: "fail", HAS_PW: "fail", NO_REPORT: "error",
        }, framework
        if without == "pass":
            reason = verdicts(db, LOGIC, framework)[(framework, check_id, NO_PW_SUMMARY, NO_PW_SUMMARY)][1]
            assert "no password" in reason and "neither possible nor necessary" in reason
