from datetime import timedelta

from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, day_of, days_ago, statuses, verdicts

LOGIC = "hygiene_unused_roles"
FW, ID = "iam_hygiene", "IH.7"
A, B = "111111111111", "222222222222"
TRUST = {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def role(name: str) -> str:
    return Snapshot.arn(A, "role", name)


def test_roles_unused_for_90_days_fail(db):
    s = Snapshot(db).account(A).account(B, missing={"authorization_details": "AccessDenied"})
    s.trusting_role(A, "used-yesterday", TRUST, created=days_ago(800), last_used=days_ago(1))
    s.trusting_role(A, "used-90-days-ago", TRUST, created=days_ago(800), last_used=days_ago(90))
    s.trusting_role(A, "used-91-days-ago", TRUST, created=days_ago(800), last_used=days_ago(91))
    s.trusting_role(A, "used-90-days-1h-ago", TRUST, created=days_ago(800),
                    last_used=days_ago(90) - timedelta(hours=1))
    s.trusting_role(A, "never-used-new", TRUST, created=days_ago(30))
    s.trusting_role(A, "never-used-old", TRUST, created=days_ago(400))
    s.trusting_role(A, "AWSServiceRoleForSupport", TRUST, created=days_ago(900),
                    path="/aws-service-role/support.amazonaws.com/")  # service-linked: no verdict
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {
        role("used-yesterday"): "pass",
        role("used-90-days-ago"): "pass",
        role("used-91-days-ago"): "fail",
        role("used-90-days-1h-ago"): "fail",
        role("never-used-new"): "pass",
        role("never-used-old"): "fail",
        B: "error",
    }
    got = verdicts(db, LOGIC, FW)
    assert "never been used" in got[(FW, ID, A, role("never-used-old"))][1]
    assert f"creation on {day_of(400)}, more than 90 days" in got[(FW, ID, A, role("never-used-old"))][1]
    assert f"last used on {day_of(91)}, more than 90 days" in got[(FW, ID, A, role("used-91-days-ago"))][1]
    assert (f"created on {day_of(30)}, at most 90 days before the snapshot; it fails if still unused after "
            f"{day_of(-60)}") in got[(FW, ID, A, role("never-used-new"))][1]
    # a role in use: no last-use date, which would change with every use
    assert got[(FW, ID, A, role("used-yesterday"))][1] == (
        "Role used-yesterday was used in the 90 days before the snapshot (RoleLastUsed).")
