"""Retention (Variable iam_audit_retention_days): older history goes, the kept dates are unchanged."""

from datetime import date, timedelta

import pytest

from iam_audit.config import ConfigError, build_config
from iam_audit.evaluate.retention import cutoff, expire_history
from tests.bi.results import A, put, user

DAYS = [date(2026, 10, 1) + timedelta(days=n) for n in range(6)]


def result_rows(db, day):
    return db.execute("SELECT * FROM aws_policy_results WHERE snapshot_date = %s ORDER BY resource_id",
                      (day,)).fetchall()


def test_retention_drops_older_dates_and_keeps_the_rest_exactly(db, postgres, database):
    # alice fails every day (one interval from day 0), bob passes then flips on day 4, carol exists on days 0-1 only
    for n, day in enumerate(DAYS):
        put(db, day, A, user(A, "alice"), "fail")
        put(db, day, A, user(A, "bob"), "pass" if n < 4 else "fail")
        if n < 2:
            put(db, day, A, user(A, "carol"), "pass")
        db.execute("INSERT INTO iam_stage.accounts (snapshot_date, account_id, account_name, extracted_at) "
                   "VALUES (%s, %s, 'a', now())", (day, A))
    db.commit()
    kept = {day: result_rows(db, day) for day in DAYS[2:]}

    conn = postgres.connect(database)
    done = expire_history(conn, DAYS[-1], 3)
    conn.close()
    # "older than 3 days" before the newest date: dates before DAYS[-1] - 3 = DAYS[2]
    assert done["kept_from"] == DAYS[2].isoformat() == cutoff(DAYS[-1], 3).isoformat()
    assert done["staged_dates_removed"] == [d.isoformat() for d in DAYS[:2]]
    assert db.execute("SELECT min(snapshot_date) FROM aws_policy_snapshots").fetchone()[0] == DAYS[2]
    assert {day: result_rows(db, day) for day in DAYS[2:]} == kept
    assert all(result_rows(db, day) == [] for day in DAYS[:2])
    # carol's interval ended before the cutoff: gone; alice's, still running, is kept whole
    resources = {r[0] for r in db.execute("SELECT resource_id FROM aws_policy_verdicts").fetchall()}
    assert user(A, "carol") not in resources and user(A, "alice") in resources
    assert db.execute("SELECT min(snapshot_date) FROM iam_stage.accounts").fetchone()[0] == DAYS[2]
    # a failing streak is walked over the kept dates only (alice's reason changes daily: one interval a day)
    streaks = {r[0]: r[1] for r in db.execute(
        "SELECT resource_id, first_failing_date FROM aws_policy_open_findings").fetchall()}
    assert streaks == {user(A, "alice"): DAYS[2], user(A, "bob"): DAYS[4]}


def test_retention_is_optional_and_validated():
    base = {"iam_audit_bucket": "bucket-1"}
    assert build_config(base).retention_days is None
    assert build_config({**base, "iam_audit_retention_days": "400"}).retention_days == 400
    for bad in ("0", "-3", "a year", "1.5"):
        with pytest.raises(ConfigError, match="iam_audit_retention_days"):
            build_config({**base, "iam_audit_retention_days": bad})
