from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, days_ago, statuses, verdicts

LOGIC = "root_account_usage"
IDS = {"cis_v1.2.0": "1.1", "cis_v1.3.0": "1.7", "cis_v1.4.0": "1.7", "cis_v1.5.0": "1.7",
       "cis_v2.0.0": "1.7", "cis_v3.0.0": "1.7", "cis_v4.0.0": "1.7", "cis_v5.0.0": "1.6",
       "cis_v6.0.0": "2.6", "cis_v7.0.0": "2.7"}
PW_89, PW_90, PW_91, NEVER, KEY2_10, KEY1_500, NO_ROOT, MISSING = (f"{n:012d}" for n in range(1, 9))


def stamp(days: float) -> str:
    return days_ago(days).strftime("%Y-%m-%d %H:%M UTC")


def _build(db):
    s = Snapshot(db)
    for acct in (PW_89, PW_90, PW_91, NEVER, KEY2_10, KEY1_500, NO_ROOT):
        s.account(acct)
        # a busy IAM user never makes root "used"
        s.user(
            acct,
            "daily",
            password=True,
            password_last_used=days_ago(0.5),
            keys=({"last_rotated": days_ago(5), "last_used": days_ago(0.1)},),
        )
    s.account(MISSING, missing={"credential_report": "ReportInProgress"})
    s.user(PW_89, "<root_account>", is_root=True, password_last_used=days_ago(89))
    s.user(PW_90, "<root_account>", is_root=True, password_last_used=days_ago(90))
    s.user(PW_91, "<root_account>", is_root=True, password_last_used=days_ago(91))
    s.user(NEVER, "<root_account>", is_root=True)
    s.user(
        KEY2_10,
        "<root_account>",
        is_root=True,
        password_last_used=days_ago(300),
        keys=(
            {"active": False, "last_rotated": days_ago(900)},
            {"active": True, "last_rotated": days_ago(900), "last_used": days_ago(10)},
        ),
    )
    s.user(
        KEY1_500,
        "<root_account>",
        is_root=True,
        keys=({"active": True, "last_rotated": days_ago(900), "last_used": days_ago(500)},),
    )
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)


def test_root_usage_within_max_days_fails(db):
    _build(db)
    for framework in IDS:
        assert statuses(db, LOGIC, framework) == {
            PW_89: "fail",  # used 89 days ago: within 90
            PW_90: "fail",  # exactly 90 days: "within" is inclusive
            PW_91: "pass",
            NEVER: "pass",  # never used
            KEY2_10: "fail",  # access key 2 used 10 days ago
            KEY1_500: "pass",
            NO_ROOT: "error",  # report without a <root_account> row
            MISSING: "error",  # data set missing: never 'pass'
        }
    assert {(k[0], k[1]) for k in verdicts(db, LOGIC)} == set(IDS.items())


def test_reasons_name_the_use_and_the_limit(db):
    _build(db)
    got = verdicts(db, LOGIC, "cis_v3.0.0")
    reason = got[("cis_v3.0.0", "1.7", KEY2_10, KEY2_10)][1]
    assert f"access key 2 last used {stamp(10)}" in reason and "in the 90 days before the snapshot" in reason
    assert "console password" not in reason  # used 300 days ago: not a recent use
    assert f"console password last used {stamp(89)}" in got[("cis_v3.0.0", "1.7", PW_89, PW_89)][1]
    assert got[("cis_v3.0.0", "1.7", PW_91, PW_91)][1] == (
        f"The root user was not used in the 90 days before the snapshot (last use: console password last used "
        f"{stamp(91)}).")
    assert "never used" in got[("cis_v3.0.0", "1.7", NEVER, NEVER)][1]
    assert got[("cis_v3.0.0", "1.7", NO_ROOT, NO_ROOT)][1].startswith(
        "The credential report has no <root_account> row"
    )
    assert "ReportInProgress" in got[("cis_v3.0.0", "1.7", MISSING, MISSING)][1]


def test_one_verdict_per_account_and_resource_is_the_account(db):
    _build(db)
    rows = db.execute(
        "SELECT account_id, resource_id, resource_type FROM aws_policy_results WHERE framework = 'cis_v1.2.0'"
    ).fetchall()
    assert len(rows) == 8
    assert all(acct == resource for acct, resource, _ in rows)
    assert {kind for acct, _, kind in rows if acct != MISSING} == {"account"}
