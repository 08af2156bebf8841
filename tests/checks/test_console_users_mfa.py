from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, days_ago, statuses, verdicts

A, B = "111111111111", "222222222222"


def test_console_users_need_mfa(db):
    s = Snapshot(db).account(A)
    s.user(A, "with-mfa", password=True, mfa=True, password_last_used=days_ago(1))
    s.user(A, "without-mfa", password=True, mfa=False)
    s.user(A, "no-console", password=False, mfa=False, keys=({"last_rotated": days_ago(5)},))
    s.user(A, "<root_account>", is_root=True, mfa=False)
    s.commit()
    run_check(db, "console_users_mfa", SNAPSHOT)
    for framework in ("cis_v1.2.0", "cis_v3.0.0"):
        got = statuses(db, "console_users_mfa", framework)
        assert got == {
            f"arn:aws:iam::{A}:user/with-mfa": "pass",
            f"arn:aws:iam::{A}:user/without-mfa": "fail",
        }
    ids = {(k[0], k[1]) for k in verdicts(db, "console_users_mfa")}
    assert ids == {
        ("cis_v1.2.0", "1.2"), ("cis_v1.3.0", "1.10"), ("cis_v1.4.0", "1.10"), ("cis_v1.5.0", "1.10"),
        ("cis_v2.0.0", "1.10"), ("cis_v3.0.0", "1.10"), ("cis_v4.0.0", "1.10"), ("cis_v5.0.0", "1.9"),
        ("cis_v6.0.0", "2.9"), ("cis_v7.0.0", "2.10"),
    }


def test_missing_credential_report_is_error_not_pass(db):
    Snapshot(db).account(A, missing={"credential_report": "AccessDenied"}).account(B).user(
        B, "u", password=True, mfa=False).commit()
    run_check(db, "console_users_mfa", SNAPSHOT)
    got = verdicts(db, "console_users_mfa", "cis_v3.0.0")
    assert got[("cis_v3.0.0", "1.10", A, A)][0] == "error"
    assert "AccessDenied" in got[("cis_v3.0.0", "1.10", A, A)][1]
    assert got[("cis_v3.0.0", "1.10", B, f"arn:aws:iam::{B}:user/u")][0] == "fail"


def test_rerun_replaces_rows(db):
    Snapshot(db).account(A).user(A, "u", password=True, mfa=False).commit()
    run_check(db, "console_users_mfa", SNAPSHOT, run_id="first")
    db.execute("UPDATE iam_stage.credential_report SET mfa_active = true")
    db.commit()
    run_check(db, "console_users_mfa", SNAPSHOT, run_id="second")
    rows = db.execute("SELECT status, run_id FROM aws_policy_results").fetchall()
    assert sorted(rows) == [("pass", "second")] * 10  # one verdict per framework version


def test_unknown_password_or_mfa_state_fails(db):
    s = Snapshot(db).account(A)
    s.user(A, "pw-unknown", password_enabled=None, mfa=True)
    s.user(A, "mfa-unknown", password=True, mfa_active=None)
    s.commit()
    run_check(db, "console_users_mfa", SNAPSHOT)
    got = verdicts(db, "console_users_mfa", "cis_v3.0.0")
    assert {k[3]: v[0] for k, v in got.items()} == {
        f"arn:aws:iam::{A}:user/pw-unknown": "fail", f"arn:aws:iam::{A}:user/mfa-unknown": "fail",
    }
    assert "password_enabled unknown" in got[("cis_v3.0.0", "1.10", A, f"arn:aws:iam::{A}:user/pw-unknown")][1]
