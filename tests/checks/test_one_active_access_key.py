from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, days_ago, statuses, verdicts

LOGIC = "one_active_access_key"
A, B = "111111111111", "222222222222"


def test_two_active_keys_fail_one_passes_none_not_evaluated(db):
    s = Snapshot(db).account(A).account(B, missing={"credential_report": "AccessDenied"})
    s.user(A, "two", keys=({"last_rotated": days_ago(100)}, {"last_rotated": days_ago(3)}))
    s.user(
        A, "slot-1", keys=({"last_rotated": days_ago(10)}, {"active": False, "last_rotated": days_ago(100)})
    )
    s.user(
        A, "slot-2", keys=({"active": False, "last_rotated": days_ago(100)}, {"last_rotated": days_ago(10)})
    )
    s.user(A, "both-inactive", keys=({"active": False}, {"active": False}))
    s.user(A, "no-keys", password=True)
    s.user(
        A, "<root_account>", is_root=True, keys=({"last_rotated": days_ago(1)}, {"last_rotated": days_ago(1)})
    )
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, "cis_v3.0.0") == {
        f"arn:aws:iam::{A}:user/two": "fail",
        f"arn:aws:iam::{A}:user/slot-1": "pass",
        f"arn:aws:iam::{A}:user/slot-2": "pass",
        B: "error",
    }
    assert statuses(db, LOGIC, "cis_v1.2.0") == {}
    reason = verdicts(db, LOGIC)[("cis_v3.0.0", "1.13", A, f"arn:aws:iam::{A}:user/two")][1]
    assert "two" in reason and "2 active access keys" in reason


def test_an_unknown_active_flag_never_passes(db):
    """true AND NULL used to be NULL, and the ELSE branch passed the user."""
    s = Snapshot(db).account(A)
    s.user(A, "second-unknown", access_key_2_active=None, keys=({"last_rotated": days_ago(10)},))
    s.user(A, "first-unknown", access_key_1_active=None)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, "cis_v3.0.0") == {
        f"arn:aws:iam::{A}:user/second-unknown": "fail", f"arn:aws:iam::{A}:user/first-unknown": "fail",
    }
    reason = verdicts(db, LOGIC)[("cis_v3.0.0", "1.13", A, f"arn:aws:iam::{A}:user/second-unknown")][1]
    assert "whether access key 2 of user second-unknown is active" in reason
