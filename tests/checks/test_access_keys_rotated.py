from datetime import timedelta

from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, day_of, days_ago, statuses, verdicts

LOGIC = "access_keys_rotated"
A, B, C = "111111111111", "222222222222", "333333333333"
IDS = {"cis_v1.2.0": "1.4", "cis_v3.0.0": "1.14"}


def test_active_keys_older_than_90_days_fail(db):
    s = Snapshot(db).account(A)
    s.access_key(A, "alice", "AKIA0000000000000089", created=days_ago(89))
    s.access_key(A, "alice", "AKIA0000000000000090", created=days_ago(90))  # exactly 90: passes
    s.access_key(A, "bob", "AKIA00000000090PLUS1H", created=days_ago(90) - timedelta(hours=1))
    s.access_key(A, "bob", "AKIA0000000000000091", created=days_ago(91))
    s.access_key(A, "carol", "AKIA0000000000000400", created=days_ago(400), last_used=days_ago(1))
    s.access_key(A, "carol", "AKIAINACTIVE00000400", status="Inactive", created=days_ago(400))
    s.user(A, "alice", keys=({"last_rotated": days_ago(89)}, {"last_rotated": days_ago(90)}))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, check_id in IDS.items():
        assert statuses(db, LOGIC, framework) == {
            "AKIA0000000000000089": "pass",
            "AKIA0000000000000090": "pass",
            "AKIA00000000090PLUS1H": "fail",
            "AKIA0000000000000091": "fail",
            "AKIA0000000000000400": "fail",
            # the inactive key gets no verdict
        }
        status, reason = verdicts(db, LOGIC, framework)[(framework, check_id, A, "AKIA0000000000000400")]
        assert (
            "AKIA0000000000000400" in reason and "carol" in reason
            and f"created on {day_of(400)}, more than 90 days before the snapshot" in reason
            and f"due by {day_of(310)}" in reason
        )
        assert "days ago" not in reason and "days old" not in reason
        status, reason = verdicts(db, LOGIC, framework)[(framework, check_id, A, "AKIA0000000000000089")]
        assert status == "pass" and f"created on {day_of(89)}, at most 90 days" in reason
        assert f"rotate it by {day_of(-1)}" in reason
    kinds = {k for (k,) in db.execute("SELECT DISTINCT resource_type FROM aws_policy_results")}
    assert kinds == {"access_key"}


def test_missing_access_keys_or_credential_report_is_error(db):
    s = Snapshot(db).account(A, missing={"access_keys": "Throttling"})
    s.account(B, missing={"credential_report": "ReportInProgress"}).account(C)
    for acct in (A, B):
        s.access_key(acct, "old", f"AKIA{acct}", created=days_ago(10))
    s.access_key(C, "old", "AKIAC", created=days_ago(500))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, "cis_v3.0.0") == {A: "error", B: "error", "AKIAC": "fail"}
    assert "Throttling" in verdicts(db, LOGIC, "cis_v3.0.0")[("cis_v3.0.0", "1.14", A, A)][1]
