from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, days_ago, statuses, verdicts

LOGIC = "access_keys_initial_setup"
A, B = "111111111111", "222222222222"
IDS = {"cis_v1.2.0": "1.21", "cis_v1.3.0": "1.11", "cis_v1.4.0": "1.11", "cis_v1.5.0": "1.11",
       "cis_v2.0.0": "1.11", "cis_v3.0.0": "1.11", "cis_v4.0.0": "1.11", "cis_v5.0.0": "1.10",
       "cis_v6.0.0": "2.10"}


def user(name: str) -> str:
    return f"arn:aws:iam::{A}:user/{name}"


def test_console_users_with_a_never_used_active_key_fail_in_every_version(db):
    s = Snapshot(db).account(A).account(B, missing={"credential_report": "AccessDenied"})
    s.user(A, "setup-key", password=True, keys=({"last_rotated": days_ago(300)},))
    s.user(A, "slot-2-unused", password=True,
           keys=({"last_rotated": days_ago(300), "last_used": days_ago(1)}, {"last_rotated": days_ago(5)}))
    s.user(A, "used-key", password=True, keys=({"last_rotated": days_ago(300), "last_used": days_ago(3)},))
    s.user(A, "inactive-unused", password=True, keys=({"active": False, "last_rotated": days_ago(300)},))
    s.user(A, "no-keys", password=True)
    s.user(A, "api-only", keys=({"last_rotated": days_ago(300)},))  # no console password: not evaluated
    s.user(A, "unknown-password", password_enabled=None,
           keys=({"last_rotated": days_ago(9), "last_used": days_ago(1)},))
    s.user(A, "unknown-active", password=True, access_key_1_active=None,
           keys=({"last_rotated": days_ago(9), "last_used": days_ago(1)},))
    s.user(A, "<root_account>", is_root=True, keys=({"last_rotated": days_ago(9)},))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, check_id in IDS.items():
        assert statuses(db, LOGIC, framework) == {
            user("setup-key"): "fail", user("slot-2-unused"): "fail", user("used-key"): "pass",
            user("inactive-unused"): "pass", user("no-keys"): "pass", user("unknown-password"): "fail",
            user("unknown-active"): "fail", B: "error",
        }, framework
        got = verdicts(db, LOGIC, framework)
        reason = got[(framework, check_id, A, user("slot-2-unused"))][1]
        assert "never used (access key 2, created" in reason and "access key 1" not in reason
        assert "does not say" in got[(framework, check_id, A, user("unknown-password"))][1]
        assert "access key 1 is active is unknown" in got[(framework, check_id, A, user("unknown-active"))][1]


def test_each_version_keeps_its_own_assessment_status(db):
    rows = db.execute("SELECT framework, assessment FROM aws_policy_controls WHERE logic = %s", (LOGIC,)).fetchall()
    assert {f: a for f, a in rows} == {f: "automated" if f == "cis_v1.5.0" else "manual" for f in IDS}
