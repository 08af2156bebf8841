from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "support_role"
IDS = {"cis_v1.3.0": "1.17", "cis_v3.0.0": "1.17", "cis_v6.0.0": "2.16", "cis_v7.0.0": "2.15"}
SUPPORT = "arn:aws:iam::aws:policy/AWSSupportAccess"
ROLE, USER_ONLY, GROUP_ONLY, NONE, LOOKALIKE, MISSING = (f"{n:012d}" for n in range(1, 7))


def test_support_access_must_be_attached_to_a_role(db):
    s = Snapshot(db)
    s.account(ROLE).role(ROLE, "support-team").attach(ROLE, "role", "support-team", SUPPORT)
    s.attach(ROLE, "user", "alice", SUPPORT)
    s.account(USER_ONLY).attach(USER_ONLY, "user", "alice", SUPPORT)
    s.account(GROUP_ONLY).attach(GROUP_ONLY, "group", "helpdesk", SUPPORT)
    s.account(NONE).attach(NONE, "role", "admin", "arn:aws:iam::aws:policy/AdministratorAccess")
    s.account(LOOKALIKE).attach(LOOKALIKE, "role", "x", f"arn:aws:iam::{LOOKALIKE}:policy/AWSSupportAccess")
    s.account(MISSING, missing={"authorization_details": "AccessDenied"})
    s.attach(MISSING, "role", "support-team", SUPPORT)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, check_id in IDS.items():
        assert statuses(db, LOGIC, framework) == {
            ROLE: "pass",
            USER_ONLY: "fail",
            GROUP_ONLY: "fail",
            NONE: "fail",
            LOOKALIKE: "fail",
            MISSING: "error",
        }
        got = verdicts(db, LOGIC, framework)
        assert "support-team" in got[(framework, check_id, ROLE, ROLE)][1]
        assert "user alice" in got[(framework, check_id, USER_ONLY, USER_ONLY)][1]
        assert "not to a role" in got[(framework, check_id, USER_ONLY, USER_ONLY)][1]
        assert "group helpdesk" in got[(framework, check_id, GROUP_ONLY, GROUP_ONLY)][1]
        assert "No role" in got[(framework, check_id, NONE, NONE)][1]


def test_v1_2_accepts_any_user_group_or_role(db):
    """v1.2.0 1.20's audit accepts AWSSupportAccess attached to any user, group or role."""
    s = Snapshot(db)
    s.account(ROLE).attach(ROLE, "role", "support-team", SUPPORT)
    s.account(USER_ONLY).attach(USER_ONLY, "user", "alice", SUPPORT)
    s.account(GROUP_ONLY).attach(GROUP_ONLY, "group", "helpdesk", SUPPORT)
    s.account(NONE).attach(NONE, "role", "admin", "arn:aws:iam::aws:policy/AdministratorAccess")
    s.account(MISSING, missing={"authorization_details": "AccessDenied"})
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, "cis_v1.2.0") == {
        ROLE: "pass", USER_ONLY: "pass", GROUP_ONLY: "pass", NONE: "fail", MISSING: "error",
    }
    got = verdicts(db, LOGIC, "cis_v1.2.0")
    assert "user alice" in got[("cis_v1.2.0", "1.20", USER_ONLY, USER_ONLY)][1]
    assert "No user or group or role" in got[("cis_v1.2.0", "1.20", NONE, NONE)][1]
