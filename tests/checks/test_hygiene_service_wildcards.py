from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "hygiene_service_wildcards"
FW, ID = "iam_hygiene", "IH.8"
A, B = "111111111111", "222222222222"


def doc(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": "*", **extra}


CASES = {
    "s3-star": ("fail", doc(allow("s3:*"))),
    "upper-case-service": ("fail", doc(allow(["sqs:SendMessage", "EC2:*"]))),
    "dashed-service": ("fail", doc(allow("s3:GetObject"), allow("resource-groups:*", Sid="Rg"))),
    "star-alone": ("pass", doc(allow("*"))),
    "partial-wildcard": ("pass", doc(allow(["s3:Get*", "ec2:Describe*"]))),
    "deny-service-star": ("pass", doc({"Effect": "Deny", "Action": "iam:*", "Resource": "*"})),
    # NotAction grants every service it does not list: wider than any "<service>:*"
    "not-action": ("fail", doc({"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"})),
    "not-action-on-a-bucket": ("fail", doc({"Effect": "Allow", "NotAction": "iam:*",
                                            "Resource": "arn:aws:s3:::b"})),
    "not-action-star": ("pass", doc({"Effect": "Allow", "NotAction": "*", "Resource": "*"})),
    # full "*:*" through NotAction is the full-admin checks' finding, like Action "*"
    "not-action-full-admin": ("pass", doc({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"})),
    "not-collected": ("fail", None),
}


def test_service_wildcards_in_managed_and_inline_policies(db):
    s = Snapshot(db).account(A).account(B, missing={"authorization_details": "AccessDenied"})
    for name, (_, document) in CASES.items():
        s.managed_policy(A, name, document)
    s.managed_policy(A, "AmazonS3FullAccess", doc(allow("s3:*")), aws_managed=True, attachments=1)  # skipped
    s.inline_policy(A, "role", "app", "queue", doc(allow(["sqs:*", "sns:*"]), allow("kms:*")))
    s.inline_policy(A, "user", "alice", "read", doc(allow("s3:GetObject")))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    expected = {Snapshot.arn(A, "policy", name): status for name, (status, _) in CASES.items()}
    assert statuses(db, LOGIC, FW) == {
        **expected,
        f"arn:aws:iam::{A}:role/app#queue": "fail",
        f"arn:aws:iam::{A}:user/alice#read": "pass",
        B: "error",
    }
    got = verdicts(db, LOGIC, FW)
    reason = got[(FW, ID, A, f"arn:aws:iam::{A}:role/app#queue")][1]
    assert "sqs:*, sns:* in statement 0; kms:* in statement 1" in reason and "role app" in reason
    dashed = got[(FW, ID, A, Snapshot.arn(A, "policy", "dashed-service"))][1]
    assert "resource-groups:* in statement 1 (Sid Rg)" in dashed

    not_action = got[(FW, ID, A, Snapshot.arn(A, "policy", "not-action"))][1]
    assert ('NotAction ["iam:*", "organizations:*"] (every action of every service not listed) in statement 0'
            in not_action)
