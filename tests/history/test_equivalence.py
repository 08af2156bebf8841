"""The history storage gives, date by date, exactly the rows of the earlier design, also
after replays of a middle date, and leaves exactly what a clean day-by-day run leaves."""

from datetime import date, timedelta

from iam_audit.database import apply_schema

from .history import (
    ACCOUNTS,
    VIEWS,
    build_base,
    churn,
    copy_day,
    create_legacy_table,
    create_legacy_views,
    rows,
    run_legacy,
    run_new,
    storage,
    view_rows,
)

D1 = date(2026, 10, 1)
# consecutive days, then a gap (no run on D5 + 1)
DAYS = [D1, D1 + timedelta(days=1), D1 + timedelta(days=2), D1 + timedelta(days=3), D1 + timedelta(days=5)]


def stage_history(db) -> None:
    build_base(db, DAYS[0])
    for step, (previous, day) in enumerate(zip(DAYS, DAYS[1:], strict=False), start=1):
        copy_day(db, previous, day)
        churn(db, day, step)


def assert_same_rows(db, days) -> None:
    for day in days:
        new, old = rows(db, "aws_policy_results", day), rows(db, "legacy_results", day)
        assert old, f"the legacy design wrote nothing for {day}"
        assert new == old, f"{day}: {len(new)} rows vs {len(old)} legacy rows"


def assert_same_views(db) -> None:
    create_legacy_views(db)
    # one finding muted until the middle date: it is 'muted' before, newly failing after
    db.execute("INSERT INTO aws_policy_exceptions (account_id, resource_pattern, reason, expires_on) "
               "VALUES (%s, %s, 'accepted until mid-month', %s)", (ACCOUNTS[0], "%:user/user-7", DAYS[2]))
    db.commit()
    for view in VIEWS:
        new, old = view_rows(db, view, "aws_policy_"), view_rows(db, view, "legacy_")
        assert old, view
        assert new == old, f"aws_policy_{view}: {len(new)} rows vs {len(old)} of the earlier design"
    db.execute("DELETE FROM aws_policy_exceptions")
    db.commit()


def test_each_date_gives_the_rows_of_the_earlier_design_also_after_replays(db):
    create_legacy_table(db)
    stage_history(db)
    for day in DAYS:
        run_new(db, day, f"run-{day}")
        run_legacy(db, day, f"run-{day}")
    assert_same_rows(db, DAYS)
    # the history actually changes: statuses, resources, errors and reasons differ between days
    first, last = set(rows(db, "aws_policy_results", DAYS[0])), set(rows(db, "aws_policy_results", DAYS[-1]))
    assert first - last and last - first
    assert {r[8] for r in rows(db, "aws_policy_results")} == {"pass", "fail", "error"}
    # stored once per variant and interval: far fewer intervals than rows
    intervals = db.execute("SELECT count(*) FROM aws_policy_verdicts").fetchone()[0]
    assert intervals * 5 < len(rows(db, "aws_policy_results"))

    middle = DAYS[2]
    # replay the middle date with different data, then an account erroring on it, then as it was
    churn(db, middle, 5)
    run_new(db, middle, "replay-1")
    run_legacy(db, middle, "replay-1")
    assert_same_rows(db, DAYS)
    # the streaks of the open findings (first_failing_date) after the middle date changed
    assert_same_views(db)
    # the newest date and the first date replayed too (re-runs are idempotent)
    for day in (DAYS[-1], DAYS[0], middle):
        run_new(db, day, f"rerun-{day}")
        run_legacy(db, day, f"rerun-{day}")
    assert_same_rows(db, DAYS)
    assert_same_views(db)
    replayed = storage(db)

    # a database written before failing_since existed (a layout without a record of applied
    # migrations) gets it on the next schema apply
    db.execute("UPDATE aws_policy_verdicts SET failing_since = NULL")
    db.execute("DROP TABLE iam_audit_schema_migrations")
    db.commit()
    apply_schema(db, force=True)
    assert storage(db) == replayed

    # a clean day-by-day run over the same final staging leaves the same history
    db.execute("TRUNCATE aws_policy_verdicts, aws_policy_evaluations, aws_policy_scopes")
    db.commit()
    for day in DAYS:
        run_new(db, day, f"rerun-{day}")
    assert storage(db) == replayed


def test_a_date_added_in_the_middle_and_a_date_removed(db):
    create_legacy_table(db)
    stage_history(db)
    gap = DAYS[-1] - timedelta(days=1)
    copy_day(db, DAYS[-2], gap)
    churn(db, gap, 5)
    for day in DAYS:
        run_new(db, day, "r")
        run_legacy(db, day, "r")
    # a backfill of the missing day after the later one was written
    run_new(db, gap, "backfill")
    run_legacy(db, gap, "backfill")
    assert_same_rows(db, [*DAYS, gap])
    assert_same_views(db)
    # removing a date's accounts (pipeline.prune_other_accounts) re-joins the intervals around it
    db.execute("DELETE FROM aws_policy_results WHERE snapshot_date = %s", (gap,))
    db.execute("DELETE FROM legacy_results WHERE snapshot_date = %s", (gap,))
    db.commit()
    assert rows(db, "aws_policy_results", gap) == []
    assert_same_rows(db, DAYS)
    assert_same_views(db)
    kept = storage(db)
    db.execute("TRUNCATE aws_policy_verdicts, aws_policy_evaluations, aws_policy_scopes")
    db.commit()
    for day in DAYS:
        run_new(db, day, "r")
    assert storage(db)["verdicts"] == kept["verdicts"]
