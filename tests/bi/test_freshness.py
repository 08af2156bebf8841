"""aws_policy_account_freshness: each account's newest evaluated snapshot against the newest run."""

from datetime import UTC, datetime

from .results import D1, D2, D3, A, B, put, put_error, query, user

C = "333333333333"


def stage_account(conn, snapshot_date, account_id, name):
    conn.execute(
        """INSERT INTO iam_stage.accounts (snapshot_date, account_id, account_name, extracted_at, run_id, raw_prefix)
           VALUES (%s, %s, %s, %s, 'test', 's3://t')""",
        (snapshot_date, account_id, name,
         datetime(snapshot_date.year, snapshot_date.month, snapshot_date.day, 6, tzinfo=UTC)),
    )


def test_freshness_flags_accounts_behind_the_newest_run(db):
    for day in (D1, D2, D3):
        stage_account(db, day, A, f"alpha-{day.day}")
        put(db, day, A, user(A, "alice"), "pass")
    # B: evaluated on D1 and D2, only an account-level error on D3
    for day in (D1, D2, D3):
        stage_account(db, day, B, "beta")
    put(db, D1, B, user(B, "gina"), "fail")
    put(db, D2, B, user(B, "gina"), "fail")
    put_error(db, D3, B)
    # C: never evaluated
    stage_account(db, D3, C, "gamma")
    put_error(db, D3, C)
    db.commit()
    rows = {r["account_id"]: r for r in query(db, "SELECT * FROM aws_policy_account_freshness")}
    assert set(rows) == {A, B, C}
    a, b, c = rows[A], rows[B], rows[C]
    assert (a["account_name"], a["latest_snapshot_date"], a["latest_run_date"], a["snapshot_age_days"],
            a["is_stale"]) == ("alpha-5", D3, D3, 0, False)
    assert a["extracted_at"] == datetime(2026, 11, 5, 6, tzinfo=UTC)
    assert (b["latest_snapshot_date"], b["snapshot_age_days"], b["is_stale"]) == (D2, (D3 - D2).days, True)
    assert b["extracted_at"] == datetime(2026, 11, 2, 6, tzinfo=UTC)
    assert (c["account_name"], c["latest_snapshot_date"], c["snapshot_age_days"], c["is_stale"]) == \
        ("gamma", None, None, True)


def test_freshness_is_readable_by_compliance_reader(db):
    granted = db.execute(
        "SELECT has_table_privilege('compliance_reader', 'aws_policy_account_freshness', 'SELECT')").fetchone()[0]
    assert granted
