from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "hygiene_principal_escalation"
FW, ID = "iam_hygiene", "IH.10"
A, B = "111111111111", "222222222222"


def doc(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": "*"}


def aws(name: str) -> str:
    return f"arn:aws:iam::aws:policy/{name}"


def customer(name: str) -> str:
    return Snapshot.arn(A, "policy", name)


def user(name: str) -> str:
    return Snapshot.arn(A, "user", name)


def role(name: str) -> str:
    return Snapshot.arn(A, "role", name)


def group(name: str) -> str:
    return Snapshot.arn(A, "group", name)


EC2_FULL = doc(allow("ec2:*"), allow("elasticloadbalancing:*"), allow("autoscaling:*"))
IAM_FULL = doc(allow(["iam:*", "organizations:DescribeAccount"]))
STAR = doc(allow("*"))
PASSROLE = doc(allow("iam:PassRole"))
READ = doc(allow(["s3:GetObject", "ec2:Describe*"]))


def organisation(s: Snapshot) -> Snapshot:
    s.managed_policy(A, "AmazonEC2FullAccess", EC2_FULL, aws_managed=True, attachments=2)
    s.managed_policy(A, "IAMFullAccess", IAM_FULL, aws_managed=True, attachments=1)
    s.managed_policy(A, "AdministratorAccess", STAR, aws_managed=True, attachments=1)
    s.managed_policy(A, "pass-any-role", PASSROLE, attachments=2)
    s.managed_policy(A, "read", READ, attachments=1)
    s.managed_policy(A, "no-iam-writes", doc(deny(["iam:*", "ssm:*"])), attachments=1)
    s.managed_policy(A, "boundary-no-iam", doc(allow(["ec2:*", "s3:*"])), attachments=0)
    s.managed_policy(A, "lambda-passrole", doc(allow("iam:PassRole", Condition={
        "StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}})), attachments=1)
    # role ci: PassRole (customer) + AmazonEC2FullAccess (AWS-managed): EC2 with any role
    s.role(A, "ci").attach(A, "role", "ci", customer("pass-any-role"))
    s.attach(A, "role", "ci", aws("AmazonEC2FullAccess"))
    s.role(A, "reader").attach(A, "role", "reader", customer("read"))
    # iamadmin: IAMFullAccess (AWS-managed) alone can make itself administrator
    s.iam_user(A, "iamadmin").attach(A, "user", "iamadmin", aws("IAMFullAccess"))
    # a user gets PassRole from a group and EC2 from its own attachment
    s.group(A, "deployers").attach(A, "group", "deployers", customer("pass-any-role"))
    s.iam_user(A, "dana").member_of(A, "dana", "deployers").attach(A, "user", "dana", aws("AmazonEC2FullAccess"))
    # an unconditional Deny in another policy removes the IAM half
    s.iam_user(A, "erin").inline_policy(A, "user", "erin", "iam", IAM_FULL)
    s.attach(A, "user", "erin", customer("no-iam-writes"))
    # a permissions boundary without IAM keeps IAMFullAccess from counting
    s.row("users", A, arn=user("bounded"), user_name="bounded", user_id="AIDABOUNDED", path="/",
          permissions_boundary_arn=customer("boundary-no-iam"))
    s.attach(A, "user", "bounded", aws("IAMFullAccess"))
    # a boundary that was not collected limits nothing
    s.row("users", A, arn=user("lost-boundary"), user_name="lost-boundary", user_id="AIDALOST", path="/",
          permissions_boundary_arn=customer("never-collected"))
    s.attach(A, "user", "lost-boundary", aws("IAMFullAccess"))
    # PassRole only to Lambda beside EC2: no path
    s.role(A, "lambda-deployer").attach(A, "role", "lambda-deployer", customer("lambda-passrole"))
    s.attach(A, "role", "lambda-deployer", aws("AmazonEC2FullAccess"))
    # an administrator has nothing to escalate to
    s.role(A, "admin").attach(A, "role", "admin", aws("AdministratorAccess"))
    # detaching the policy that holds the Deny: the Deny lives in another policy
    s.managed_policy(A, "no-vault", doc({"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::vault/*"}),
                     attachments=1)
    s.iam_user(A, "fay").attach(A, "user", "fay", customer("no-vault"))
    s.inline_policy(A, "user", "fay", "detach", doc(allow("iam:DetachUserPolicy")))
    # a held policy whose document was not collected
    s.managed_policy(A, "lost", None, attachments=1)
    s.iam_user(A, "gus").attach(A, "user", "gus", customer("lost"))
    # an attachment with no managed_policies row at all
    s.iam_user(A, "hal").attach(A, "user", "hal", aws("SomethingNew"))
    # the group itself is evaluated
    s.group(A, "ops").inline_policy(A, "group", "ops", "keys", doc(allow("iam:CreateAccessKey")))
    # a service-linked role gets no verdict
    s.row("roles", A, arn=Snapshot.arn(A, "role", "aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"),
          role_name="AWSServiceRoleForECS", path="/aws-service-role/ecs.amazonaws.com/")
    return s


EXPECTED = {
    role("ci"): "fail", role("reader"): "pass", user("iamadmin"): "fail", user("dana"): "fail",
    group("deployers"): "pass", user("erin"): "pass", user("bounded"): "pass", user("lost-boundary"): "fail",
    role("lambda-deployer"): "fail", role("admin"): "pass", user("fay"): "fail", user("gus"): "fail",
    user("hal"): "fail", group("ops"): "fail",
}


def test_escalation_is_judged_per_principal_across_its_policies(db):
    s = organisation(Snapshot(db).account(A).account(B, missing={"authorization_details": "AccessDenied"}))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {**EXPECTED, B: "error"}
    got = verdicts(db, LOGIC, FW)

    def why(arn):
        return got[(FW, ID, A, arn)][1]

    # each needed action names the policy granting it, AWS-managed ones included
    assert ("iam:PassRole + ec2:RunInstances (ec2:RunInstances from AWS-managed policy AmazonEC2FullAccess, "
            "iam:PassRole from customer-managed policy pass-any-role)") in why(role("ci"))
    assert "iam:Attach*Policy" in why(user("iamadmin")) and "AWS-managed policy IAMFullAccess" in why(user("iamadmin"))
    assert "iam:PassRole from customer-managed policy pass-any-role through group deployers" in why(user("dana"))
    assert "was not collected, so it limits nothing" in why(user("lost-boundary"))
    assert "within its permissions boundary" in why(user("bounded"))
    assert "nothing to escalate to" in why(role("admin"))
    assert "iam:Detach*Policy/Delete*Policy with a Deny to remove" in why(user("fay"))
    assert "customer-managed policy lost" in why(user("gus")) and "not collected" in why(user("gus"))
    assert "AWS-managed policy SomethingNew" in why(user("hal"))
    # lambda-deployer: the EC2 half is there but PassRole only reaches Lambda; it still fails for
    # AmazonEC2FullAccess's own paths (launch templates of running instances)
    assert "iam:PassRole + ec2:RunInstances" not in why(role("lambda-deployer"))
    assert "ec2:CreateLaunchTemplateVersion + ec2:ModifyLaunchTemplate" in why(role("lambda-deployer"))


def test_every_principal_type_resource_type(db):
    organisation(Snapshot(db).account(A)).commit()
    run_check(db, LOGIC, SNAPSHOT)
    kinds = {k for (k,) in db.execute(
        "SELECT DISTINCT resource_type FROM aws_policy_results WHERE control_logic = %s", (LOGIC,))}
    assert kinds == {"iam_user", "iam_role", "iam_group"}


def test_passrole_limited_to_roles_that_lead_nowhere(db):
    s = Snapshot(db).account(A)
    s.managed_policy(A, "AdministratorAccess", STAR, aws_managed=True, attachments=1)
    s.managed_policy(A, "read", READ, attachments=1)
    s.managed_policy(A, "launch", doc(allow("ec2:RunInstances")), attachments=4)
    s.role(A, "worker").attach(A, "role", "worker", customer("read"))
    s.role(A, "admin").attach(A, "role", "admin", aws("AdministratorAccess"))
    targets = {
        "passes-worker": [role("worker")],
        "passes-admin": [role("worker"), role("admin")],
        "passes-unknown": [role("elsewhere")],
        "passes-wildcard": [Snapshot.arn(A, "role", "work*")],
    }
    for name, resources in targets.items():
        s.role(A, name).attach(A, "role", name, customer("launch"))
        s.inline_policy(A, "role", name, "pass", doc(allow("iam:PassRole", resources)))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    got = statuses(db, LOGIC, FW)
    assert {name: got[role(name)] for name in targets} == {
        "passes-worker": "pass", "passes-admin": "fail", "passes-unknown": "fail", "passes-wildcard": "fail"}
    reason = verdicts(db, LOGIC, FW)[(FW, ID, A, role("passes-worker"))][1]
    assert f"its iam:PassRole is limited to {role('worker')}, which can neither administer nor escalate" in reason
