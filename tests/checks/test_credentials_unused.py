from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, day_of, days_ago, statuses, verdicts

LOGIC = "credentials_unused"
A, B = "111111111111", "222222222222"
V1, V3 = "cis_v1.2.0", "cis_v3.0.0"  # 90 days / 45 days


def user(name: str, account: str = A) -> str:
    return f"arn:aws:iam::{account}:user/{name}"


def _run(db):
    run_check(db, LOGIC, SNAPSHOT)
    return statuses(db, LOGIC, V1), statuses(db, LOGIC, V3)


def test_password_last_used_boundaries(db):
    s = Snapshot(db).account(A)
    for days in (44, 45, 89, 90):
        s.user(
            A,
            f"pw-{days}",
            password=True,
            password_last_used=days_ago(days),
            password_last_changed=days_ago(400),
        )
    s.commit()
    v1, v3 = _run(db)
    assert v1 == {user("pw-44"): "pass", user("pw-45"): "pass", user("pw-89"): "pass", user("pw-90"): "fail"}
    assert v3 == {user("pw-44"): "pass", user("pw-45"): "fail", user("pw-89"): "fail", user("pw-90"): "fail"}


# Each version's own threshold, read from its benchmark text: "90 days or greater" up to v1.3.0,
# "45 days or greater/more" from v1.4.0 on. A version added to the catalogue must be added here.
THRESHOLD_DAYS = {"cis_v1.2.0": 90, "cis_v1.3.0": 90, "cis_v1.4.0": 45, "cis_v1.5.0": 45, "cis_v2.0.0": 45,
                  "cis_v3.0.0": 45, "cis_v4.0.0": 45, "cis_v5.0.0": 45, "cis_v6.0.0": 45,
                  "cis_v7.0.0": 45}


def test_every_version_applies_its_own_threshold(db):
    from iam_audit.evaluate.catalogue import load_catalogue

    check = next(c for c in load_catalogue().checks if c.logic == LOGIC)
    assert {c.framework for c in check.controls} == set(THRESHOLD_DAYS)
    s = Snapshot(db).account(A)
    ages = (44, 45, 89, 90)
    for days in ages:
        s.user(A, f"pw-{days}", password=True, password_last_used=days_ago(days),
               password_last_changed=days_ago(400))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, limit in THRESHOLD_DAYS.items():
        expected = {user(f"pw-{days}"): "fail" if days >= limit else "pass" for days in ages}
        assert statuses(db, LOGIC, framework) == expected, framework


def test_never_used_password_counts_from_last_change_then_creation(db):
    s = Snapshot(db).account(A)
    # never used, changed 10 days ago although the user is 1000 days old: recent
    s.user(A, "new-password", password=True, password_last_changed=days_ago(10), created=days_ago(1000))
    s.user(A, "old-password", password=True, password_last_changed=days_ago(100))
    s.user(A, "changed-60", password=True, password_last_changed=days_ago(60))
    # no password_last_changed: fall back to user_creation_time
    s.user(A, "created-50", password=True, created=days_ago(50), password_last_changed=None)
    s.user(A, "created-20", password=True, created=days_ago(20), password_last_changed=None)
    # the helper fills password_last_changed from the creation time: clear it for the fallback
    db.execute("UPDATE iam_stage.credential_report SET password_last_changed = NULL"
               " WHERE user_name IN ('created-50', 'created-20')")
    s.commit()
    v1, v3 = _run(db)
    assert v1 == {
        user("new-password"): "pass",
        user("old-password"): "fail",
        user("changed-60"): "pass",
        user("created-50"): "pass",
        user("created-20"): "pass",
    }
    assert v3 == {
        user("new-password"): "pass",
        user("old-password"): "fail",
        user("changed-60"): "fail",
        user("created-50"): "fail",
        user("created-20"): "pass",
    }
    reason = verdicts(db, LOGIC, V1)[(V1, "1.3", A, user("old-password"))][1]
    assert f"console password never used, set on {day_of(100)}" in reason
    assert verdicts(db, LOGIC, V3)[(V3, "1.12", A, user("created-20"))][1] == (
        "Every active credential of user created-20 was used or issued in the 45 days before the snapshot: "
        f"console password never used, user created on {day_of(20)}.")


def test_active_keys_last_used_or_rotated_and_inactive_keys_ignored(db):
    s = Snapshot(db).account(A)
    s.user(A, "key-used-90", keys=({"last_rotated": days_ago(400), "last_used": days_ago(90)},))
    s.user(A, "key-used-89", keys=({"last_rotated": days_ago(400), "last_used": days_ago(89)},))
    s.user(A, "key-never-used-91", keys=({"last_rotated": days_ago(91)},))
    s.user(A, "key-never-used-44", keys=({"last_rotated": days_ago(44)},))
    s.user(
        A,
        "inactive-old-key",
        keys=({"active": False, "last_rotated": days_ago(900), "last_used": days_ago(800)},),
    )
    s.user(
        A,
        "stale-slot-2",
        keys=(
            {"last_rotated": days_ago(5), "last_used": days_ago(1)},
            {"last_rotated": days_ago(300), "last_used": days_ago(200)},
        ),
    )
    s.user(
        A,
        "inactive-stale-slot-2",
        keys=(
            {"last_rotated": days_ago(5), "last_used": days_ago(1)},
            {"active": False, "last_rotated": days_ago(300)},
        ),
    )
    s.commit()
    v1, v3 = _run(db)
    assert v1 == {
        user("key-used-90"): "fail",
        user("key-used-89"): "pass",
        user("key-never-used-91"): "fail",
        user("key-never-used-44"): "pass",
        user("inactive-old-key"): "pass",
        user("stale-slot-2"): "fail",
        user("inactive-stale-slot-2"): "pass",
    }
    assert v3 == {
        user("key-used-90"): "fail",
        user("key-used-89"): "fail",
        user("key-never-used-91"): "fail",
        user("key-never-used-44"): "pass",
        user("inactive-old-key"): "pass",
        user("stale-slot-2"): "fail",
        user("inactive-stale-slot-2"): "pass",
    }
    got = verdicts(db, LOGIC, V1)
    assert "no active credentials" in got[(V1, "1.3", A, user("inactive-old-key"))][1]
    reason = got[(V1, "1.3", A, user("stale-slot-2"))][1]
    assert f"access key 2 last used on {day_of(200)}" in reason and "access key 1" not in reason
    # a credential in use is named without its last-use date, which moves with every use
    assert got[(V1, "1.3", A, user("key-used-89"))][1] == (
        "Every active credential of user key-used-89 was used or issued in the 90 days before the snapshot: "
        "access key 1 used.")


def test_reason_lists_every_stale_credential(db):
    s = Snapshot(db).account(A)
    s.user(
        A,
        "everything-stale",
        password=True,
        password_last_used=days_ago(120),
        keys=({"last_rotated": days_ago(300), "last_used": days_ago(150)}, {"last_rotated": days_ago(100)}),
    )
    s.commit()
    _run(db)
    status, reason = verdicts(db, LOGIC, V1)[(V1, "1.3", A, user("everything-stale"))]
    assert status == "fail"
    for part in (
        f"console password last used on {day_of(120)}",
        f"access key 1 last used on {day_of(150)}",
        f"access key 2 never used, created on {day_of(100)}",
        "unused for 90 days or more before the snapshot",
    ):
        assert part in reason


def test_root_excluded_users_without_credentials_pass_and_missing_report_errors(db):
    s = Snapshot(db).account(A).account(B, missing={"credential_report": "AccessDenied"})
    s.user(
        A,
        "<root_account>",
        is_root=True,
        password_last_used=days_ago(500),
        keys=({"last_rotated": days_ago(900)},),
    )
    s.user(A, "nothing")
    s.user(B, "stale", password=True, password_last_used=days_ago(500))
    s.commit()
    v1, v3 = _run(db)
    assert v1 == v3 == {user("nothing"): "pass", B: "error"}
    assert {(k[0], k[1]) for k in verdicts(db, LOGIC)} == {
        (V1, "1.3"), ("cis_v1.3.0", "1.12"), ("cis_v1.4.0", "1.12"), ("cis_v1.5.0", "1.12"),
        ("cis_v2.0.0", "1.12"), (V3, "1.12"), ("cis_v4.0.0", "1.12"), ("cis_v5.0.0", "1.11"),
        ("cis_v6.0.0", "2.11"), ("cis_v7.0.0", "2.11"),
    }


def test_unknown_flags_or_dates_never_pass(db):
    """WHERE v.enabled used to drop a credential whose flag was NULL, and the user passed."""
    s = Snapshot(db).account(A)
    s.user(A, "stale-key-unknown-flag", access_key_1_active=None,
           keys=({"last_rotated": days_ago(300), "last_used": days_ago(200)},))
    s.user(A, "password-unknown", password_enabled=None, password_last_used=days_ago(1))
    s.user(A, "no-dates", keys=({"last_rotated": None},), user_creation_time=None)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, "cis_v3.0.0") == {
        user("stale-key-unknown-flag"): "fail", user("password-unknown"): "fail", user("no-dates"): "fail",
    }
    got = verdicts(db, LOGIC, "cis_v3.0.0")
    assert "whether the access key 1 is active is unknown" in got[
        ("cis_v3.0.0", "1.12", A, user("stale-key-unknown-flag"))][1]
    assert "whether the console password is enabled is unknown" in got[
        ("cis_v3.0.0", "1.12", A, user("password-unknown"))][1]
    assert "access key 1 has no last-use, issue or user creation date" in got[
        ("cis_v3.0.0", "1.12", A, user("no-dates"))][1]
