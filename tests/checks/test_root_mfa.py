from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "root_mfa"
IDS = {"cis_v1.2.0": "1.13", "cis_v3.0.0": "1.5"}
ON, OFF, NO_ROW, MISSING = (f"{n:012d}" for n in range(1, 5))


def test_root_mfa_enabled_passes(db):
    s = Snapshot(db)
    s.account(ON).account_summary(ON, mfa=1)
    s.account(OFF).account_summary(OFF, mfa=0)
    s.account(NO_ROW)
    s.account(MISSING, missing={"account_summary": "AccessDenied"}).account_summary(MISSING, mfa=1)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, check_id in IDS.items():
        assert statuses(db, LOGIC, framework) == {ON: "pass", OFF: "fail", NO_ROW: "fail", MISSING: "error"}
        assert "no MFA device" in verdicts(db, LOGIC, framework)[(framework, check_id, OFF, OFF)][1]
