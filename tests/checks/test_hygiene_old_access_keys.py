from datetime import timedelta

from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, day_of, days_ago, statuses, verdicts

LOGIC = "hygiene_old_access_keys"
FW, ID = "iam_hygiene", "IH.6"
A, B = "111111111111", "222222222222"


def test_active_keys_older_than_365_days_fail(db):
    s = Snapshot(db).account(A).account(B, missing={"access_keys": "AccessDenied"})
    s.access_key(A, "alice", "AKIA0000000000000364", created=days_ago(364))
    s.access_key(A, "alice", "AKIA0000000000000365", created=days_ago(365))  # exactly 365: passes
    s.access_key(A, "bob", "AKIA00000000365PLUS1H", created=days_ago(365) - timedelta(hours=1))
    s.access_key(A, "bob", "AKIA0000000000000900", created=days_ago(900), last_used=days_ago(1))
    s.access_key(A, "carol", "AKIAINACTIVE00000900", status="Inactive", created=days_ago(900))
    s.row("access_keys", A, user_name="dan", user_arn=Snapshot.arn(A, "user", "dan"),
          access_key_id="AKIANODATE0000000000", status="Active", create_date=None)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {
        "AKIA0000000000000364": "pass",
        "AKIA0000000000000365": "pass",
        "AKIA00000000365PLUS1H": "fail",
        "AKIA0000000000000900": "fail",
        "AKIANODATE0000000000": "fail",
        # the inactive key gets no verdict
        B: "error",
    }
    got = verdicts(db, LOGIC, FW)
    reason = got[(FW, ID, A, "AKIA0000000000000900")][1]
    assert "bob" in reason and f"created on {day_of(900)}, more than 365 days before the snapshot" in reason
    assert f"due for replacement by {day_of(535)}" in reason
    assert "unknown" in got[(FW, ID, A, "AKIANODATE0000000000")][1]
