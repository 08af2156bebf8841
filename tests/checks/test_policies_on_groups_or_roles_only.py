from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "policies_on_groups_or_roles_only"
IDS = {"cis_v1.2.0": "1.16", "cis_v3.0.0": "1.15"}
A, B = "111111111111", "222222222222"


def user(name: str) -> str:
    return f"arn:aws:iam::{A}:user/{name}"


def test_users_with_own_policies_fail(db):
    s = Snapshot(db).account(A).account(B, missing={"authorization_details": "AccessDenied"})
    for name in ("via-group", "managed", "inline", "both", "nothing"):
        s.iam_user(A, name)
    s.iam_user(B, "managed")
    s.group(A, "devs").role(A, "app")
    s.row("group_memberships", A, user_arn=user("via-group"), group_name="devs")
    s.attach(A, "group", "devs", "arn:aws:iam::aws:policy/ReadOnlyAccess")
    s.attach(A, "role", "app", "arn:aws:iam::aws:policy/AmazonS3FullAccess")
    s.inline_policy(A, "group", "devs", "group-inline")
    s.inline_policy(A, "role", "app", "role-inline")
    s.attach(A, "user", "managed", "arn:aws:iam::aws:policy/AdministratorAccess")
    s.inline_policy(A, "user", "inline", "s3-read")
    s.attach(A, "user", "both", f"arn:aws:iam::{A}:policy/custom")
    s.attach(A, "user", "both", "arn:aws:iam::aws:policy/IAMUserChangePassword")
    s.inline_policy(A, "user", "both", "extra")
    s.attach(B, "user", "managed", "arn:aws:iam::aws:policy/AdministratorAccess")
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, check_id in IDS.items():
        assert statuses(db, LOGIC, framework) == {
            user("via-group"): "pass",
            user("managed"): "fail",
            user("inline"): "fail",
            user("both"): "fail",
            user("nothing"): "pass",
            B: "error",
        }
        got = verdicts(db, LOGIC, framework)
        assert "AdministratorAccess" in got[(framework, check_id, A, user("managed"))][1]
        assert "s3-read" in got[(framework, check_id, A, user("inline"))][1]
        reason = got[(framework, check_id, A, user("both"))][1]
        assert all(name in reason for name in ("custom", "IAMUserChangePassword", "extra"))
