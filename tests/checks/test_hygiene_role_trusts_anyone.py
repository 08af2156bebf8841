from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, expected_role_statuses, statuses, verdicts

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
    # an external id alone is IH.9's (lower severity) finding
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
    s.trusting_roles(A, CASES)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    expected = expected_role_statuses(A, CASES)
    assert statuses(db, LOGIC, FW) == {**expected, B: "error"}
    got = verdicts(db, LOGIC, FW)
    reason = got[(FW, ID, A, Snapshot.arn(A, "role", "single-object-statement"))][1]
    assert 'Principal {"AWS": "*"} in statement 0 (Sid Open)' in reason
    assert 'Principal "*"' in got[(FW, ID, A, Snapshot.arn(A, "role", "star-string"))][1]
    assert "NotPrincipal" in got[(FW, ID, A, Snapshot.arn(A, "role", "not-principal"))][1]
    assert "not collected" in got[(FW, ID, A, Snapshot.arn(A, "role", "not-collected"))][1]


OUTSIDE = "999999999999"
GITHUB = f"arn:aws:iam::{A}:oidc-provider/token.actions.githubusercontent.com"
GH = "token.actions.githubusercontent.com"
COGNITO = "cognito-identity.amazonaws.com"
# conditions that do not say who calls, or say it with wildcards, or name an outside account
WEAK = {
    "secure-transport-only": ("fail", trust(allow({"AWS": "*"}, Condition={"Bool": {"aws:SecureTransport": "true"}}))),
    "mfa-only": ("fail", trust(allow("*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}))),
    "org-id-wildcard": ("fail", trust(allow({"AWS": "*"}, Condition={"StringLike": {"aws:PrincipalOrgID": "*"}}))),
    "org-id-if-exists": ("fail", trust(allow({"AWS": "*"},
                                             Condition={"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-abc123"}}))),
    "org-id-negated": ("fail", trust(allow({"AWS": "*"},
                                           Condition={"StringNotEquals": {"aws:PrincipalOrgID": "o-abc123"}}))),
    "principal-account-outside": ("fail", trust(allow({"AWS": "*"},
                                                      Condition={"StringEquals": {"aws:PrincipalAccount": OUTSIDE}}))),
    "principal-arn-wildcard-account": ("fail", trust(allow(
        {"AWS": "*"}, Condition={"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/deploy"}}))),
    "wildcard-account-root": ("fail", trust(allow({"AWS": "arn:aws:iam::*:root"}))),
    "github-aud-only": ("fail", trust(allow({"Federated": GITHUB}, Action="sts:AssumeRoleWithWebIdentity",
                                            Condition={"StringEquals": {f"{GH}:aud": "sts.amazonaws.com"}}))),
    "github-sub-any-repo": ("fail", trust(allow({"Federated": GITHUB}, Action="sts:AssumeRoleWithWebIdentity",
                                                Condition={"StringLike": {f"{GH}:sub": "repo:*"}}))),
    "cognito-without-aud": ("fail", trust(allow({"Federated": COGNITO}, Action="sts:AssumeRoleWithWebIdentity",
                                                Condition={"ForAnyValue:StringLike": {
                                                    "cognito-identity.amazonaws.com:amr": "authenticated"}}))),
    "google-without-aud": ("fail", trust(allow({"Federated": "accounts.google.com"},
                                               Action="sts:AssumeRoleWithWebIdentity"))),
    # conditions that bind the caller to the organisation or to its identities
    "org-id-literal": ("pass", trust(allow({"AWS": "*"}, Condition=ORG_CONDITION))),
    "org-paths": ("pass", trust(allow({"AWS": "*"}, Condition={
        "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": "o-abc123/r-ab12/*"}}))),
    "principal-account-inside": ("pass", trust(allow({"AWS": "*"},
                                                     Condition={"StringEquals": {"aws:PrincipalAccount": [A, B]}}))),
    "source-arn-own": ("pass", trust(allow("*", Condition={
        "Bool": {"aws:SecureTransport": "true"},
        "ArnEquals": {"aws:SourceArn": f"arn:aws:sns:eu-west-1:{A}:alerts"}}))),
    "github-sub-repo": ("pass", trust(allow({"Federated": GITHUB}, Action="sts:AssumeRoleWithWebIdentity", Condition={
        "StringEquals": {f"{GH}:aud": "sts.amazonaws.com"},
        "StringLike": {f"{GH}:sub": "repo:octo-org/app:*"}}))),
    "cognito-with-aud": ("pass", trust(allow({"Federated": COGNITO}, Action="sts:AssumeRoleWithWebIdentity",
                                             Condition={"StringEquals": {f"{COGNITO}:aud": "eu-west-1:1234-abcd"}}))),
    "eks-oidc-with-sub": ("pass", trust(allow(
        {"Federated": f"arn:aws:iam::{A}:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"},
        Action="sts:AssumeRoleWithWebIdentity",
        Condition={"StringEquals": {"oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:ci:app"}}))),
}


def test_conditions_that_do_not_bind_the_caller_fail_and_those_that_do_pass(db):
    s = Snapshot(db).account(A).account(B).organization_account(A).organization_account(B)
    s.trusting_roles(A, WEAK)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    got = statuses(db, LOGIC, FW)
    in_a = {k: v for k, v in got.items() if k.startswith(f"arn:aws:iam::{A}")}
    assert in_a == expected_role_statuses(A, WEAK)
    reasons = verdicts(db, LOGIC, FW)

    def why(name):
        return reasons[(FW, ID, A, Snapshot.arn(A, "role", name))][1]

    assert "(aws:SecureTransport) do not restrict who calls" in why("secure-transport-only")
    assert f"admit account {OUTSIDE} outside the organisation" in why("principal-account-outside")
    assert 'Principal {"AWS": "arn:aws:iam::*:root"}' in why("wildcard-account-root")
    assert f'Principal {{"Federated": "{GITHUB}"}}' in why("github-aud-only")
    assert f"(conditions on {GH}:aud do not)" in why("github-aud-only")
