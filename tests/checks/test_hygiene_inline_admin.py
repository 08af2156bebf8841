from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "hygiene_inline_admin"
FW, ID = "iam_hygiene", "IH.2"
A, B = "111111111111", "222222222222"
ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}
S3_ALL = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}


def doc(statement) -> dict:
    return {"Version": "2012-10-17", "Statement": statement}


def inline(entity_type: str, entity: str, name: str) -> str:
    return f"arn:aws:iam::{A}:{entity_type}/{entity}#{name}"


def test_inline_full_admin_fails_for_users_groups_and_roles(db):
    s = Snapshot(db).account(A).account(B, missing={"authorization_details": "AccessDenied"})
    s.inline_policy(A, "user", "alice", "admin", doc(ALLOW_ALL))
    s.inline_policy(A, "group", "ops", "admin-list", doc([S3_ALL, {**ALLOW_ALL, "Action": ["*"], "Sid": "All"}]))
    s.inline_policy(A, "role", "ci", "everything", doc([ALLOW_ALL]))
    s.inline_policy(A, "role", "ci", "s3", doc([S3_ALL]))
    s.inline_policy(A, "user", "bob", "admin-on-one-bucket",
                    doc({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/*"}))
    s.inline_policy(A, "group", "ops", "deny-all", doc({"Effect": "Deny", "Action": "*", "Resource": "*"}))
    s.row("inline_policies", A, entity_type="user", entity_arn=Snapshot.arn(A, "user", "carol"),
          entity_name="carol", policy_name="lost", document=None)
    s.managed_policy(A, "custom-admin", doc(ALLOW_ALL))  # managed: the CIS check's business, not this one
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {
        inline("user", "alice", "admin"): "fail",
        inline("group", "ops", "admin-list"): "fail",
        inline("role", "ci", "everything"): "fail",
        inline("role", "ci", "s3"): "pass",
        inline("user", "bob", "admin-on-one-bucket"): "pass",
        inline("group", "ops", "deny-all"): "pass",
        inline("user", "carol", "lost"): "fail",
        B: "error",
    }
    got = verdicts(db, LOGIC, FW)
    reason = got[(FW, ID, A, inline("group", "ops", "admin-list"))][1]
    assert "admin-list" in reason and "group ops" in reason and "statement 1 (Sid All)" in reason
    assert "statement 0" not in reason
    assert "not collected" in got[(FW, ID, A, inline("user", "carol", "lost"))][1]


def test_allow_not_action_on_every_resource_counts_as_full_admin(db):
    s = Snapshot(db).account(A)
    s.inline_policy(A, "role", "ci", "all-but-s3",
                    doc({"Effect": "Allow", "NotAction": ["s3:*"], "Resource": "*", "Sid": "Hidden"}))
    s.inline_policy(A, "role", "ci", "power-user",
                    doc({"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {
        inline("role", "ci", "all-but-s3"): "fail", inline("role", "ci", "power-user"): "pass",
    }
    reason = verdicts(db, LOGIC, FW)[(FW, ID, A, inline("role", "ci", "all-but-s3"))][1]
    assert 'statement 0 (Sid Hidden): Allow NotAction ["s3:*"]' in reason


# Administrator grants written without Action "*": NotAction that leaves an action by
# which the principal makes itself administrator, or NotResource that leaves IAM in.
HIDDEN = {
    # leaves iam:AttachUserPolicy and the rest of IAM: the user attaches AdministratorAccess to itself
    "not-action-get-user": ("fail", {"Effect": "Allow", "NotAction": "iam:GetUser", "Resource": "*"}),
    "not-action-deletes": ("fail", {"Effect": "Allow", "NotAction": "*:Delete*", "Resource": "*"}),
    "not-action-most-of-iam": ("fail", {"Effect": "Allow", "NotAction": ["iam:Attach*", "iam:Put*"],
                                        "Resource": "*"}),
    "not-resource-bucket": ("fail", {"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:s3:::x/*"}),
    "not-action-and-not-resource": ("fail", {"Effect": "Allow", "NotAction": "s3:*",
                                             "NotResource": ["arn:aws:s3:::x", "arn:aws:s3:::x/*"]}),
    # every self-administrator action excluded: no IAM administration left (PowerUserAccess)
    "not-action-all-iam-writes": ("pass", {"Effect": "Allow", "Resource": "*", "NotAction": [
        "iam:Attach*", "iam:Put*", "iam:CreatePolicyVersion", "iam:AddUserToGroup", "iam:UpdateAssumeRolePolicy"]}),
    # NotResource that excludes every IAM resource
    "not-resource-iam": ("pass", {"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:iam::*"}),
    "not-resource-star": ("pass", {"Effect": "Allow", "Action": "*", "NotResource": "*"}),
    "one-bucket": ("pass", {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::x/*"}),
}


def test_not_action_and_not_resource_hiding_an_administrator(db):
    s = Snapshot(db).account(A)
    for name, (_, statement) in HIDDEN.items():
        s.inline_policy(A, "user", "mallory", name, doc(statement))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {inline("user", "mallory", name): status
                                       for name, (status, _) in HIDDEN.items()}
    got = verdicts(db, LOGIC, FW)
    assert ('Allow Action "*" on NotResource "arn:aws:s3:::x/*" (every resource except those, IAM included)'
            in got[(FW, ID, A, inline("user", "mallory", "not-resource-bucket"))][1])
    assert 'NotAction "iam:GetUser"' in got[(FW, ID, A, inline("user", "mallory", "not-action-get-user"))][1]
