from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, expected_role_statuses, statuses, verdicts

LOGIC = "hygiene_external_id_trust"
FW, ID = "iam_hygiene", "IH.9"
A, B = "111111111111", "222222222222"


def trust(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(principal, **extra) -> dict:
    return {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}


EXTERNAL_ID = {"StringEquals": {"sts:ExternalId": "vendor-7"}}
CASES = {
    "star-external-id": ("fail", trust(allow({"AWS": "*"}, Condition=EXTERNAL_ID, Sid="Vendor"))),
    "star-external-id-and-transport": (
        "fail", trust(allow("*", Condition={**EXTERNAL_ID, "Bool": {"aws:SecureTransport": "true"}}))),
    # a wildcard external id is no secret: anyone (IH.3's finding, not this one)
    "star-external-id-wildcard": (
        "pass", trust(allow({"AWS": "*"}, Condition={"StringLike": {"sts:ExternalId": "*"}}))),
    # the caller is bound as well: no longer resting on the external id
    "star-external-id-and-org": (
        "pass", trust(allow({"AWS": "*"},
                            Condition={**EXTERNAL_ID, "StringLike": {"aws:PrincipalOrgID": "o-abc123"}}))),
    "named-vendor-external-id": (
        "pass", trust(allow({"AWS": "arn:aws:iam::999999999999:root"}, Condition=EXTERNAL_ID))),
    "star-no-condition": ("pass", trust(allow({"AWS": "*"}))),  # IH.3's finding
    "service": ("pass", trust(allow({"Service": "ec2.amazonaws.com"}))),
    "not-collected": ("fail", None),
}


def test_external_id_alone_is_a_finding_of_its_own(db):
    s = Snapshot(db).account(A).account(B, missing={"authorization_details": "AccessDenied"})
    s.trusting_roles(A, CASES)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    expected = expected_role_statuses(A, CASES)
    assert statuses(db, LOGIC, FW) == {**expected, B: "error"}
    got = verdicts(db, LOGIC, FW)
    reason = got[(FW, ID, A, Snapshot.arn(A, "role", "star-external-id"))][1]
    assert 'Principal {"AWS": "*"} in statement 0 (Sid Vendor)' in reason
    assert "not collected" in got[(FW, ID, A, Snapshot.arn(A, "role", "not-collected"))][1]
    # the same roles under IH.3: the open ones fail there, the external-id ones pass
    run_check(db, "hygiene_role_trusts_anyone", SNAPSHOT)
    ih3 = statuses(db, "hygiene_role_trusts_anyone", FW)
    assert ih3[Snapshot.arn(A, "role", "star-external-id")] == "pass"
    assert ih3[Snapshot.arn(A, "role", "star-external-id-wildcard")] == "fail"
    assert ih3[Snapshot.arn(A, "role", "star-no-condition")] == "fail"
