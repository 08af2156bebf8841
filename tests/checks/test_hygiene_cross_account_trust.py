from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, expected_role_statuses, statuses, verdicts

LOGIC = "hygiene_cross_account_trust"
FW, ID = "iam_hygiene", "IH.4"
A, B, C = "111111111111", "222222222222", "333333333333"  # C: in the organisation, not audited
OUT, OUT2 = "999999999999", "888888888888"


def trust(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(principal, **extra) -> dict:
    return {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}


CASES = {
    "same-account": ("pass", trust(allow({"AWS": f"arn:aws:iam::{A}:root"}))),
    "org-member-not-audited": ("pass", trust(allow({"AWS": f"arn:aws:iam::{C}:role/deployer"}))),
    "org-member-bare-id": ("pass", trust(allow({"AWS": B}))),
    "outside-root": ("fail", trust(allow({"AWS": f"arn:aws:iam::{OUT}:root"}))),
    "outside-user-and-role": (
        "fail",
        trust(allow({"AWS": [f"arn:aws:iam::{OUT2}:user/x", f"arn:aws:iam::{C}:root"]}),
              allow({"AWS": f"arn:aws:iam::{OUT}:role/path/r"})),
    ),
    "outside-bare-id-with-external-id": (
        "fail",
        trust(allow({"AWS": OUT}, Condition={"StringEquals": {"sts:ExternalId": "vendor"}})),
    ),
    "outside-assumed-role": ("fail", trust(allow({"AWS": f"arn:aws:sts::{OUT}:assumed-role/r/s"}))),
    "outside-but-denied-only": ("pass", trust({"Effect": "Deny", "Principal": {"AWS": OUT}, "Action": "sts:*"})),
    "star-is-another-check": ("pass", trust(allow({"AWS": "*"}))),
    "service": ("pass", trust(allow({"Service": "lambda.amazonaws.com"}))),
    "unique-id": ("pass", trust(allow({"AWS": "AROAEXAMPLEUNIQUEID"}))),
    "not-collected": ("fail", None),
}


def roles(s: Snapshot) -> None:
    s.trusting_roles(A, CASES)


def test_trust_outside_the_organisation_fails(db):
    s = Snapshot(db).account(A).account(B)
    for acct in (A, B, C):
        s.organization_account(acct)
    roles(s)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {Snapshot.arn(A, "role", n): status for n, (status, _) in CASES.items()}
    got = verdicts(db, LOGIC, FW)
    reason = got[(FW, ID, A, Snapshot.arn(A, "role", "outside-user-and-role"))][1]
    assert f"accounts {OUT2}, {OUT} outside the organisation" in reason  # sorted, each once
    assert "audited accounts" not in reason
    reason = got[(FW, ID, A, Snapshot.arn(A, "role", "outside-root"))][1]
    assert f"account {OUT} outside the organisation" in reason


def test_without_organisation_the_audited_accounts_stand_in(db):
    s = Snapshot(db).account(A).account(B).account("444444444444", missing={"authorization_details": "Throttling"})
    roles(s)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    expected = {Snapshot.arn(A, "role", n): status for n, (status, _) in CASES.items()}
    expected[Snapshot.arn(A, "role", "org-member-not-audited")] = "fail"  # C is unknown now
    assert statuses(db, LOGIC, FW) == {**expected, "444444444444": "error"}
    got = verdicts(db, LOGIC, FW)
    for name in ("org-member-not-audited", "same-account"):
        assert "audited accounts" in got[(FW, ID, A, Snapshot.arn(A, "role", name))][1]
    assert C in got[(FW, ID, A, Snapshot.arn(A, "role", "org-member-not-audited"))][1]


CONDITION_CASES = {
    # an account named only inside a condition is trusted as much as a named principal
    "star-limited-to-outside-account": (
        "fail", trust(allow({"AWS": "*"}, Condition={"StringEquals": {"aws:PrincipalAccount": OUT}}))),
    "service-for-outside-source": (
        "fail", trust(allow({"Service": "sns.amazonaws.com"},
                            Condition={"ArnLike": {"aws:SourceArn": f"arn:aws:sns:eu-west-1:{OUT2}:topic"}}))),
    "star-limited-to-org-accounts": (
        "pass", trust(allow({"AWS": "*"}, Condition={"StringEquals": {"aws:PrincipalAccount": [B, C]}}))),
    "service-for-own-source": (
        "pass", trust(allow({"Service": "events.amazonaws.com"},
                            Condition={"StringEquals": {"aws:SourceAccount": A}}))),
    # a negated test names the accounts that may NOT call: not a trust in them
    "negated-outside": (
        "pass", trust(allow({"AWS": f"arn:aws:iam::{A}:root"},
                            Condition={"StringNotEquals": {"aws:PrincipalAccount": OUT}}))),
}


def test_accounts_named_only_in_conditions(db):
    s = Snapshot(db).account(A).account(B)
    for account in (A, B, C):
        s.organization_account(account)
    s.trusting_roles(A, CONDITION_CASES)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    in_a = {k: v for k, v in statuses(db, LOGIC, FW).items() if k.startswith(f"arn:aws:iam::{A}")}
    assert in_a == expected_role_statuses(A, CONDITION_CASES)
    reason = verdicts(db, LOGIC, FW)[(FW, ID, A, Snapshot.arn(A, "role", "star-limited-to-outside-account"))][1]
    assert f"trusts AWS account {OUT} outside the organisation" in reason
