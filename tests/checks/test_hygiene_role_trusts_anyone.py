from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "hygiene_role_trusts_anyone"
FW, ID = "iam_hygiene", "IH.3"
A, B = "111111111111", "222222222222"


def trust(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(principal, **extra) -> dict:
    return {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}


ORG_CONDITION = {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}
CASES = {
    "star-string": ("fail", trust(allow("*"))),
    "aws-star": ("fail", trust(allow({"AWS": "*"}))),
    "aws-star-in-list": ("fail", trust(allow({"AWS": [f"arn:aws:iam::{B}:root", "*"]}))),
    "single-object-statement": ("fail", {"Version": "2012-10-17", "Statement": allow({"AWS": "*"}, Sid="Open")}),
    "not-principal": (
        "fail",
        trust({"Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{B}:root"}, "Action": "sts:AssumeRole"}),
    ),
    "star-with-condition": ("pass", trust(allow("*", Condition=ORG_CONDITION))),
    "aws-star-with-external-id": (
        "pass",
        trust(allow({"AWS": "*"}, Condition={"StringEquals": {"sts:ExternalId": "x"}})),
    ),
    "empty-condition": ("fail", trust(allow({"AWS": "*"}, Condition={}))),
    "deny-star": ("pass", trust({"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"})),
    "named-account": ("pass", trust(allow({"AWS": f"arn:aws:iam::{B}:root"}))),
    "service": ("pass", trust(allow({"Service": "ec2.amazonaws.com"}))),
    "federated": ("pass", trust(allow({"Federated": "arn:aws:iam::111111111111:saml-provider/corp"}))),
    "not-collected": ("fail", None),
}


def test_wildcard_principals_without_condition_fail(db):
    s = Snapshot(db).account(A).account(B, missing={"authorization_details": "AccessDenied"})
    for name, (_, document) in CASES.items():
        s.trusting_role(A, name, document)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    expected = {Snapshot.arn(A, "role", name): status for name, (status, _) in CASES.items()}
    assert statuses(db, LOGIC, FW) == {**expected, B: "error"}
    got = verdicts(db, LOGIC, FW)
    reason = got[(FW, ID, A, Snapshot.arn(A, "role", "single-object-statement"))][1]
    assert 'Principal {"AWS": "*"} in statement 0 (Sid Open)' in reason
    assert 'Principal "*"' in got[(FW, ID, A, Snapshot.arn(A, "role", "star-string"))][1]
    assert "NotPrincipal" in got[(FW, ID, A, Snapshot.arn(A, "role", "not-principal"))][1]
    assert "not collected" in got[(FW, ID, A, Snapshot.arn(A, "role", "not-collected"))][1]
