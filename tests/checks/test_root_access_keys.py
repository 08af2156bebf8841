from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "root_access_keys"
IDS = {"cis_v1.2.0": "1.12", "cis_v3.0.0": "1.4"}
NONE, PRESENT, NO_ROW, UNKNOWN, MISSING = (f"{n:012d}" for n in range(1, 6))


def test_root_access_keys_present_fails(db):
    s = Snapshot(db)
    s.account(NONE).account_summary(NONE, root_keys=0)
    s.account(PRESENT).account_summary(PRESENT, root_keys=1)
    s.account(NO_ROW)
    s.account(UNKNOWN).account_summary(UNKNOWN, root_keys=None)
    s.account(MISSING, missing={"account_summary": "AccessDenied"}).account_summary(MISSING, root_keys=0)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, check_id in IDS.items():
        assert statuses(db, LOGIC, framework) == {
            NONE: "pass",
            PRESENT: "fail",
            NO_ROW: "fail",
            UNKNOWN: "fail",
            MISSING: "error",
        }
        got = verdicts(db, LOGIC, framework)
        assert "AccountAccessKeysPresent = 1" in got[(framework, check_id, PRESENT, PRESENT)][1]
        assert "cannot be shown" in got[(framework, check_id, NO_ROW, NO_ROW)][1]
