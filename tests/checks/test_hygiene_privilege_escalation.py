from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "hygiene_privilege_escalation"
FW, ID = "iam_hygiene", "IH.1"
A, B = "111111111111", "222222222222"


def doc(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": "*", **extra}


def deny(action, **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": "*", **extra}


def policy(name: str) -> str:
    return f"arn:aws:iam::{A}:policy/{name}"


# name -> (expected status, document)
CASES = {
    # single actions, exact and through wildcards, any case
    "create-policy-version": ("fail", doc(allow("iam:CreatePolicyVersion"))),
    "set-default-lowercase": ("fail", doc(allow("iam:setdefaultpolicyversion"))),
    "attach-wildcard": ("fail", doc(allow(["s3:GetObject", "iam:Attach*"]))),
    "attach-role-only": ("fail", doc(allow("iam:AttachRolePolicy"))),
    "put-role-policy-question-mark": ("fail", doc(allow("iam:PutR?lePolicy"))),
    "create-access-key": ("fail", doc(allow("IAM:CreateAccessKey"))),
    "login-profile": ("fail", doc(allow(["iam:CreateLoginProfile", "iam:UpdateLoginProfile"]))),
    "update-trust": ("fail", doc(allow("iam:UpdateAssumeRolePolicy"))),
    "add-user-to-group": ("fail", doc(allow("iam:AddUserToGroup"))),
    "iam-star": ("fail", doc(allow("iam:*"))),
    "star": ("fail", doc(allow("*"))),
    "lambda-update-code": ("fail", doc(allow("lambda:UpdateFunctionCode"))),
    # an Allow with a Condition or on one resource still allows the action
    "conditional-allow": (
        "fail",
        doc(allow("iam:CreateAccessKey", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}})),
    ),
    # NotAction allows every action its patterns do not match
    "not-action-s3": ("fail", doc({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"})),
    # without IAM and Lambda, the rest still reaches roles already at work (ssm:SendCommand, ...)
    "not-action-iam-lambda": (
        "fail",
        doc({"Effect": "Allow", "NotAction": ["iam:*", "lambda:*"], "Resource": "*"}),
    ),
    # combinations with iam:PassRole, within one policy, across statements
    "passrole-alone": ("pass", doc(allow("iam:PassRole"))),
    "runinstances-alone": ("pass", doc(allow("ec2:RunInstances"))),
    "passrole-ec2": ("fail", doc(allow("iam:PassRole"), allow("ec2:Run*"))),
    "passrole-lambda-invoke": (
        "fail",
        doc(allow(["iam:PassRole", "lambda:CreateFunction"]), allow("lambda:InvokeFunction")),
    ),
    "passrole-lambda-esm": ("fail", doc(allow(["iam:PassRole", "lambda:CreateFunction", "lambda:CreateEvent*"]))),
    "passrole-lambda-create-only": ("pass", doc(allow(["iam:PassRole", "lambda:CreateFunction"]))),
    "passrole-cloudformation": ("fail", doc(allow(["iam:PassRole", "cloudformation:CreateStack"]))),
    "passrole-glue": ("fail", doc(allow(["iam:PassRole", "glue:CreateDevEndpoint"]))),
    # explicit Deny in the same policy
    "star-minus-iam-lambda": ("fail", doc(allow("*"), deny(["iam:*", "lambda:*"]))),
    "star-minus-iam-and-existing-role-services": (
        "pass",
        doc(allow("*"), deny(["iam:*", "lambda:*", "ssm:*", "ecs:*", "ec2*", "cloudformation:*", "glue:*",
                              "sagemaker:*", "codebuild:*", "apprunner:*", "bedrock-agentcore:*"]))),
    "deny-passrole-breaks-combination": ("pass", doc(allow(["iam:PassRole", "ec2:RunInstances"]), deny("iam:Pass*"))),
    "deny-on-one-resource-keeps": (
        "fail",
        doc(allow("iam:CreateAccessKey"),
            {"Effect": "Deny", "Action": "iam:CreateAccessKey", "Resource": "arn:aws:iam::111111111111:user/root-ish"}),
    ),
    "deny-with-condition-keeps": (
        "fail",
        doc(allow("iam:CreateAccessKey"),
            deny("iam:CreateAccessKey", Condition={"Bool": {"aws:SecureTransport": "false"}})),
    ),
    "deny-not-action-removes-rest": (
        "pass",
        doc(allow("*"), {"Effect": "Deny", "NotAction": ["s3:*", "ec2:Describe*"], "Resource": "*"}),
    ),
    # harmless policies
    "read-only": ("pass", doc(allow(["iam:Get*", "iam:List*", "s3:GetObject"]))),
    "deny-only": ("pass", doc(deny("*"))),
    "empty": ("pass", doc()),
    "not-collected": ("fail", None),
}


def test_actions_wildcards_notaction_combinations_and_deny(db):
    s = Snapshot(db).account(A)
    for name, (_, document) in CASES.items():
        s.managed_policy(A, name, document)
    s.managed_policy(A, "AdministratorAccess", doc(allow("*")), aws_managed=True, attachments=1)  # skipped
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {policy(name): status for name, (status, _) in CASES.items()}
    got = verdicts(db, LOGIC, FW)
    reason = got[(FW, ID, A, policy("passrole-ec2"))][1]
    assert "passrole-ec2" in reason
    assert "iam:PassRole + ec2:RunInstances" in reason and "statement 0, statement 1" in reason
    # a rule met by all the actions it names is named alone; by some of them, with those actions
    assert "iam:Attach*Policy in statement 0" in got[(FW, ID, A, policy("attach-wildcard"))][1]
    assert "iam:Attach*Policy (iam:AttachRolePolicy) in statement 0" in got[(FW, ID, A, policy("attach-role-only"))][1]
    # rules are grouped by the statements allowing them
    reason = got[(FW, ID, A, policy("star"))][1]
    assert "iam:CreatePolicyVersion, iam:SetDefaultPolicyVersion, iam:Attach*Policy, iam:Put*Policy" in reason
    assert reason.count("statement 0") == 1
    reason = got[(FW, ID, A, policy("passrole-lambda-invoke"))][1]
    assert ("iam:PassRole + lambda:CreateFunction + lambda:InvokeFunction/CreateEventSourceMapping "
            "(iam:PassRole, lambda:CreateFunction, lambda:InvokeFunction) in statement 0, statement 1") in reason
    assert "not collected" in got[(FW, ID, A, policy("not-collected"))][1]
    assert "none of the known" in got[(FW, ID, A, policy("read-only"))][1]
    assert "ssm:SendCommand/StartSession" in got[(FW, ID, A, policy("not-action-iam-lambda"))][1]


def test_inline_policies_resource_and_sid(db):
    s = Snapshot(db).account(A).account(B, missing={"authorization_details": "AccessDenied"})
    s.inline_policy(A, "role", "ci", "deploy",
                    doc(allow("s3:PutObject"), {**allow(["iam:PassRole", "ec2:RunInstances"]), "Sid": "Launch"}))
    s.inline_policy(A, "user", "alice", "self-service", doc(allow("iam:ChangePassword")))
    s.inline_policy(A, "group", "ops", "keys", doc(allow("iam:CreateAccessKey")))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    ci = f"arn:aws:iam::{A}:role/ci#deploy"
    assert statuses(db, LOGIC, FW) == {
        ci: "fail",
        f"arn:aws:iam::{A}:user/alice#self-service": "pass",
        f"arn:aws:iam::{A}:group/ops#keys": "fail",
        B: "error",
    }
    reason = verdicts(db, LOGIC, FW)[(FW, ID, A, ci)][1]
    assert "Inline policy deploy of role ci" in reason and "statement 1 (Sid Launch)" in reason
    assert "statement 0" not in reason
    kinds = {k for (k,) in db.execute(
        "SELECT DISTINCT resource_type FROM aws_policy_results WHERE account_id = %s", (A,))}
    assert kinds == {"iam_inline_policy"}


def test_action_matching_function(db):
    cases = [
        ("iam:Put*", "iam:PutUserPolicy", True),
        ("IAM:PUT*", "iam:putuserpolicy", True),
        ("iam:Put?ser*", "iam:PutUserPolicy", True),
        ("iam:Put_", "iam:PutX", False),  # "_" and "%" are literal, not LIKE wildcards
        ("iam:%", "iam:PutX", False),
        ("*", "glue:CreateDevEndpoint", True),
        ("iam:Get*", "iam:PutUserPolicy", False),
        ("iam:PassRole", "iam:PassRoles", False),
    ]
    for pattern, action, expected in cases:
        (got,) = db.execute("SELECT iam_audit_action_matches(%s, %s)", (pattern, action)).fetchone()
        assert got is expected, (pattern, action)


def test_passrole_limited_to_named_roles_is_named_in_the_reason(db):
    worker = f"arn:aws:iam::{A}:role/worker"
    s = Snapshot(db).account(A)
    s.managed_policy(A, "named", doc(allow("ec2:RunInstances"), {**allow("iam:PassRole"), "Resource": [worker]}))
    s.managed_policy(A, "mixed", doc(allow("ec2:RunInstances"), {**allow("iam:PassRole"), "Resource": [worker]},
                                     allow("iam:PassRole")))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    got = verdicts(db, LOGIC, FW)
    assert got[(FW, ID, A, policy("named"))][0] == "fail"
    assert f"Its iam:PassRole is limited to {worker}" in got[(FW, ID, A, policy("named"))][1]
    assert "is limited to" not in got[(FW, ID, A, policy("mixed"))][1]
