from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "cloudshell_full_access"
POLICY = "arn:aws:iam::aws:policy/AWSCloudShellFullAccess"
ATTACHED, CLEAN, MISSING = "111111111111", "222222222222", "333333333333"


def test_cloudshell_full_access_attached_anywhere_fails(db):
    s = Snapshot(db)
    s.account(ATTACHED).attach(ATTACHED, "role", "ops", POLICY).attach(ATTACHED, "user", "dev", POLICY)
    s.attach(ATTACHED, "group", "admins", "arn:aws:iam::aws:policy/AdministratorAccess")
    s.account(CLEAN).attach(CLEAN, "role", "ops", "arn:aws:iam::aws:policy/AWSCloudShellReadOnlyAccess")
    s.account(MISSING, missing={"authorization_details": "AccessDenied"})
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    rows = verdicts(db, LOGIC, "cis_v3.0.0")
    assert {(a, r): v[0] for (_, _, a, r), v in rows.items()} == {
        (ATTACHED, POLICY): "fail",
        (CLEAN, POLICY): "pass",
        (MISSING, MISSING): "error",
    }
    reason = rows[("cis_v3.0.0", "1.22", ATTACHED, POLICY)][1]
    assert "role ops" in reason and "user dev" in reason and "admins" not in reason
    assert statuses(db, LOGIC, "cis_v1.2.0") == {}
