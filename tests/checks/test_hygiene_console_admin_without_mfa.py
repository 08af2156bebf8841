from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "hygiene_console_admin_without_mfa"
FW, ID = "iam_hygiene", "IH.5"
A, B = "111111111111", "222222222222"
STAR = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
READ = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
ADMIN_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"


def user(name: str) -> str:
    return Snapshot.arn(A, "user", name)


def test_console_admins_without_mfa_fail_whatever_the_path(db):
    s = Snapshot(db).account(A).account(B, missing={"credential_report": "ReportNotReady"})
    s.user(A, "<root_account>", is_root=True)  # root is not evaluated here
    s.managed_policy(A, "AdministratorAccess", STAR, aws_managed=True, attachments=2)
    s.managed_policy(A, "custom-admin", STAR, attachments=1)
    s.managed_policy(A, "custom-read", READ, attachments=2)
    s.group(A, "admins").group(A, "inline-admins").group(A, "readers")
    s.attach(A, "group", "admins", Snapshot.arn(A, "policy", "custom-admin"))
    s.attach(A, "group", "readers", Snapshot.arn(A, "policy", "custom-read"))
    s.inline_policy(A, "group", "inline-admins", "break-glass", STAR)
    # one console user without MFA per path to admin
    for name in ("direct-aws", "direct-inline", "via-group", "via-group-inline", "reader", "no-policy"):
        s.user(A, name, password=True, mfa=False)
    s.attach(A, "user", "direct-aws", ADMIN_ACCESS)
    s.inline_policy(A, "user", "direct-inline", "me-admin", STAR)
    s.member_of(A, "via-group", "admins").member_of(A, "via-group", "readers")
    s.member_of(A, "via-group-inline", "inline-admins")
    s.member_of(A, "reader", "readers")
    s.attach(A, "user", "reader", Snapshot.arn(A, "policy", "custom-read"))
    # admins that are fine: MFA on, or no console password
    s.user(A, "admin-mfa", password=True, mfa=True).attach(A, "user", "admin-mfa", ADMIN_ACCESS)
    s.user(A, "admin-keys-only", password=False, mfa=False).member_of(A, "admin-keys-only", "admins")
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {
        user("direct-aws"): "fail",
        user("direct-inline"): "fail",
        user("via-group"): "fail",
        user("via-group-inline"): "fail",
        user("reader"): "pass",
        user("no-policy"): "pass",
        user("admin-mfa"): "pass",
        user("admin-keys-only"): "pass",
        B: "error",
    }
    got = verdicts(db, LOGIC, FW)
    assert "AdministratorAccess attached to the user" in got[(FW, ID, A, user("direct-aws"))][1]
    assert "inline policy me-admin of the user" in got[(FW, ID, A, user("direct-inline"))][1]
    reason = got[(FW, ID, A, user("via-group"))][1]
    assert "custom-admin through group admins" in reason and "custom-read" not in reason
    assert "break-glass of group inline-admins" in got[(FW, ID, A, user("via-group-inline"))][1]
    assert "no administrator policy" in got[(FW, ID, A, user("reader"))][1]
    assert "has no console password" in got[(FW, ID, A, user("admin-keys-only"))][1]


def test_administrator_access_counts_even_without_its_document(db):
    s = Snapshot(db).account(A)
    s.user(A, "dora", password=True, mfa=False).attach(A, "user", "dora", ADMIN_ACCESS)  # no managed_policies row
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {user("dora"): "fail"}


def test_allow_not_action_on_every_resource_is_an_administrator(db):
    """The classic hidden admin: Allow everything except a few actions, IAM included."""
    hidden = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "*"}]}
    power_user = {"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}]}
    s = Snapshot(db).account(A)
    s.managed_policy(A, "hidden-admin", hidden, attachments=1)
    s.managed_policy(A, "power-user", power_user, attachments=1)
    s.user(A, "erin", password=True).attach(A, "user", "erin", Snapshot.arn(A, "policy", "hidden-admin"))
    s.user(A, "gus", password=True).inline_policy(A, "user", "gus", "all-but-s3", hidden)
    s.user(A, "pat", password=True).attach(A, "user", "pat", Snapshot.arn(A, "policy", "power-user"))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {user("erin"): "fail", user("gus"): "fail", user("pat"): "pass"}


def test_unknown_password_mfa_or_policy_document_never_passes_an_admin(db):
    """coalesce(password_enabled, false) used to pass a console admin without MFA."""
    s = Snapshot(db).account(A)
    s.user(A, "pw-unknown", password_enabled=None).attach(A, "user", "pw-unknown", ADMIN_ACCESS)
    s.user(A, "mfa-unknown", password=True, mfa_active=None).attach(A, "user", "mfa-unknown", ADMIN_ACCESS)
    s.managed_policy(A, "lost", None, attachments=1)
    s.user(A, "doc-unknown", password=True).attach(A, "user", "doc-unknown", Snapshot.arn(A, "policy", "lost"))
    s.user(A, "doc-unknown-mfa", password=True, mfa=True)
    s.attach(A, "user", "doc-unknown-mfa", Snapshot.arn(A, "policy", "lost"))
    s.user(A, "pw-unknown-no-admin", password_enabled=None)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {
        user("pw-unknown"): "fail", user("mfa-unknown"): "fail", user("doc-unknown"): "fail",
        user("doc-unknown-mfa"): "pass", user("pw-unknown-no-admin"): "pass",
    }
    got = verdicts(db, LOGIC, FW)
    assert "password_enabled unknown" in got[(FW, ID, A, user("pw-unknown"))][1]
    assert "documents were not collected (managed policy lost" in got[(FW, ID, A, user("doc-unknown"))][1]


def test_not_action_or_not_resource_administrator_without_mfa(db):
    """A console user without MFA whose policy excludes one IAM action can attach AdministratorAccess to itself."""
    def one(statement):
        return {"Version": "2012-10-17", "Statement": [statement]}

    s = Snapshot(db).account(A)
    s.user(A, "nora", password=True).inline_policy(
        A, "user", "nora", "all-but-getuser", one({"Effect": "Allow", "NotAction": "iam:GetUser", "Resource": "*"}))
    s.user(A, "dell", password=True).inline_policy(
        A, "user", "dell", "all-but-deletes", one({"Effect": "Allow", "NotAction": "*:Delete*", "Resource": "*"}))
    s.user(A, "nell", password=True).inline_policy(
        A, "user", "nell", "all-but-bucket", one({"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:s3:::x/*"}))
    s.user(A, "paula", password=True).inline_policy(
        A, "user", "paula", "all-but-iam", one({"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:iam::*"}))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {user("nora"): "fail", user("dell"): "fail", user("nell"): "fail",
                                       user("paula"): "pass"}


def test_a_user_who_can_make_itself_administrator_is_one(db):
    """AWS-managed IAMFullAccess lets its holder attach AdministratorAccess to itself."""
    iam_full = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}
    own_keys = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*AccessKey*",
                                                        "Resource": "arn:aws:iam::*:user/${aws:username}"}]}
    s = Snapshot(db).account(A)
    s.managed_policy(A, "IAMFullAccess", iam_full, aws_managed=True, attachments=2)
    s.user(A, "iamadmin", password=True).attach(A, "user", "iamadmin", "arn:aws:iam::aws:policy/IAMFullAccess")
    s.group(A, "iam-team").attach(A, "group", "iam-team", "arn:aws:iam::aws:policy/IAMFullAccess")
    s.user(A, "ivy", password=True).member_of(A, "ivy", "iam-team")
    s.user(A, "ivo", password=True, mfa=True).attach(A, "user", "ivo", "arn:aws:iam::aws:policy/IAMFullAccess")
    s.user(A, "kim", password=True).inline_policy(A, "user", "kim", "own-keys", own_keys)
    own_policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:AttachUserPolicy",
                                                          "Resource": "arn:aws:iam::*:user/${aws:username}"}]}
    s.user(A, "lou", password=True).inline_policy(A, "user", "lou", "own-policies", own_policy)
    one_role = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:AttachRolePolicy",
                                                        "Resource": f"arn:aws:iam::{A}:role/lambda-exec"}]}
    s.user(A, "max", password=True).inline_policy(A, "user", "max", "one-role", one_role)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {user("iamadmin"): "fail", user("ivy"): "fail", user("ivo"): "pass",
                                       user("kim"): "pass", user("lou"): "fail", user("max"): "pass"}
    reason = verdicts(db, LOGIC, FW)[(FW, ID, A, user("iamadmin"))][1]
    assert "managed policy IAMFullAccess attached to the user, which lets it make itself administrator" in reason
