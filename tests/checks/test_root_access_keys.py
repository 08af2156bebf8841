from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, days_ago, statuses, verdicts

LOGIC = "root_access_keys"
IDS = {"cis_v1.3.0": "1.4", "cis_v3.0.0": "1.4", "cis_v6.0.0": "2.3", "cis_v7.0.0": "2.4"}
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


INACTIVE, ACTIVE, UNKNOWN_FLAG, NO_ROOT_ROW, CLEAN = (f"{n:012d}" for n in range(11, 16))


def test_v1_2_fails_only_active_root_keys(db):
    """v1.2.0 1.12 tests the credential report's access_key_N_active flags: an inactive key passes."""
    s = Snapshot(db)
    s.account(INACTIVE).account_summary(INACTIVE, root_keys=1)
    s.user(INACTIVE, "<root_account>", is_root=True, keys=({"active": False, "last_rotated": days_ago(400)},))
    s.account(ACTIVE).account_summary(ACTIVE, root_keys=1)
    s.user(ACTIVE, "<root_account>", is_root=True,
           keys=({"active": False, "last_rotated": days_ago(400)}, {"last_rotated": days_ago(4)}))
    s.account(UNKNOWN_FLAG).account_summary(UNKNOWN_FLAG, root_keys=1)
    s.user(UNKNOWN_FLAG, "<root_account>", is_root=True, access_key_2_active=None,
           keys=({"active": False, "last_rotated": days_ago(400)},))
    s.account(NO_ROOT_ROW).account_summary(NO_ROOT_ROW, root_keys=1)
    s.account(CLEAN).account_summary(CLEAN, root_keys=0)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, "cis_v1.2.0") == {
        INACTIVE: "pass", ACTIVE: "fail", UNKNOWN_FLAG: "fail", NO_ROOT_ROW: "fail", CLEAN: "pass",
    }
    for framework in IDS:
        assert statuses(db, LOGIC, framework) == {
            INACTIVE: "fail", ACTIVE: "fail", UNKNOWN_FLAG: "fail", NO_ROOT_ROW: "fail", CLEAN: "pass",
        }
    got = verdicts(db, LOGIC, "cis_v1.2.0")
    assert "no active access key" in got[("cis_v1.2.0", "1.12", INACTIVE, INACTIVE)][1]
    assert "has an active access key" in got[("cis_v1.2.0", "1.12", ACTIVE, ACTIVE)][1]
