"""Muting over a multi-day history: aws_policy_muted_verdicts, the muted counts of
aws_policy_scores and aws_policy_framework_scores (aws_policy_muted_counts), and the muting in
aws_policy_changes, _latest and _open_findings give exactly what the definition gives --
aws_policy_matching_exception applied to every verdict of aws_policy_results, as the earlier
design's views do -- and exactly the rows of the muted view before it bounded its candidates by
the exceptions' dates, for exceptions of every shape, alone and together."""

from __future__ import annotations

from datetime import timedelta

from .history import ACCOUNTS, VIEWS, create_legacy_views, run_new, view_rows
from .test_equivalence import DAYS, stage_history

# aws_policy_muted_verdicts before its candidates were bounded by created_at (the reference)
EARLIER_MUTED = """
SELECT c.snapshot_date, c.framework, c.check_id, c.account_id, c.resource_id, c.variant_id,
       x.exception_id, x.exception_reason, x.exception_expires_on,
       c.snapshot_date = (SELECT n.latest_date FROM aws_policy_pairs n
                          WHERE n.variant_id = c.variant_id AND n.account_id = c.account_id) AS is_current
FROM (
    SELECT DISTINCT e.snapshot_date, s.framework, s.check_id, e.account_id, i.resource_id, e.variant_id
    FROM aws_policy_exceptions ex
    JOIN aws_policy_scopes s
      ON s.snapshot_date <= ex.expires_on
     AND (ex.framework IS NULL OR s.framework = ex.framework)
     AND (ex.check_id IS NULL OR s.check_id = ex.check_id)
    JOIN aws_policy_evaluations e
      ON e.snapshot_date = s.snapshot_date AND e.variant_id = s.variant_id AND e.error_reason IS NULL
     AND (ex.account_id IS NULL OR e.account_id = ex.account_id)
    JOIN aws_policy_verdicts i
      ON i.variant_id = e.variant_id AND i.account_id = e.account_id AND i.status = 'fail'
     AND i.valid_from <= e.snapshot_date AND i.valid_to >= e.snapshot_date
     AND (ex.resource_pattern IS NULL OR i.resource_id LIKE ex.resource_pattern)
) c
CROSS JOIN LATERAL aws_policy_matching_exception(
    c.snapshot_date, c.framework, c.check_id, c.account_id, c.resource_id, 'fail') x
"""
MUTED_COLUMNS = ("snapshot_date, framework, check_id, account_id, resource_id, variant_id, exception_id, "
                 "exception_reason, exception_expires_on, is_current")

# the definition: every verdict of aws_policy_results through aws_policy_matching_exception, counted
DEFINED_SCORES = """
SELECT snapshot_date, framework, check_id, account_id,
       count(*) FILTER (WHERE effective_status = 'pass') AS pass_count,
       count(*) FILTER (WHERE effective_status = 'fail') AS fail_count,
       count(*) FILTER (WHERE effective_status = 'error') AS error_count,
       count(*) FILTER (WHERE effective_status = 'muted') AS muted_count,
       count(*) AS total_count,
       round(count(*) FILTER (WHERE effective_status = 'pass')::numeric
             / nullif(count(*) FILTER (WHERE effective_status IN ('pass', 'fail')), 0), 4) AS pass_rate
FROM aws_policy_results_effective
GROUP BY 1, 2, 3, 4
"""
def fetch(db, sql: str) -> list[tuple]:
    return sorted(db.execute(sql).fetchall(), key=str)


def defined_muted(db) -> list[tuple]:
    rows = db.execute(
        "SELECT snapshot_date, framework, check_id, account_id, resource_id, exception_id, exception_reason, "
        "exception_expires_on, snapshot_date = max(snapshot_date) OVER (PARTITION BY framework, check_id, "
        "account_id), effective_status FROM aws_policy_results_effective").fetchall()
    return sorted((r[:9] for r in rows if r[9] == "muted"), key=str)


def assert_muting_exact(db, context: str) -> int:
    muted = fetch(db, f"SELECT {MUTED_COLUMNS} FROM aws_policy_muted_verdicts")  # noqa: S608
    assert muted == fetch(db, EARLIER_MUTED), f"{context}: muted rows differ from the earlier view"
    assert [r[:5] + r[6:] for r in muted] == defined_muted(db), f"{context}: muted rows differ from the definition"
    current = fetch(db, f"SELECT {MUTED_COLUMNS} FROM aws_policy_muted_verdicts WHERE is_current")  # noqa: S608
    assert current == [r for r in muted if r[-1]], context

    scores = fetch(db, "SELECT snapshot_date, framework, check_id, account_id, pass_count, fail_count, error_count, "
                       "muted_count, total_count, pass_rate FROM aws_policy_scores")
    assert scores == fetch(db, DEFINED_SCORES), f"{context}: aws_policy_scores differs from the definition"
    framework = fetch(db, "SELECT snapshot_date, framework, pass_count, fail_count, error_count, muted_count, "
                          "total_count, raw_fail_count FROM aws_policy_framework_scores")
    summed: dict = {}
    for date_, fw, _check, _account, *counts in fetch(db, DEFINED_SCORES):
        summed[date_, fw] = [x + y for x, y in zip(summed.get((date_, fw), [0] * 5), counts[:5], strict=True)]
    assert framework == sorted(((d, fw, p, f, e, m, t, f + m) for (d, fw), (p, f, e, m, t) in summed.items()),
                               key=str), f"{context}: aws_policy_framework_scores differs from the definition"
    # the other views with effective statuses, against the earlier design's views over the same rows
    for view in VIEWS:
        assert view_rows(db, view, "aws_policy_") == view_rows(db, view, "legacy_"), f"{context}: {view}"
    for row in db.execute("SELECT snapshot_date, framework, check_id, account_id, muted_count "
                          "FROM aws_policy_muted_counts"):
        assert row[4] > 0, f"{context}: {row}"
    return len(muted)


def add_exception(db, created, expires, account=None, framework=None, check_id=None, pattern=None) -> None:
    """An exception created on `created` (back-dated by the table's owner with the guard off)."""
    db.execute("ALTER TABLE aws_policy_exceptions DISABLE TRIGGER aws_policy_exceptions_guard")
    db.execute("INSERT INTO aws_policy_exceptions (account_id, framework, check_id, resource_pattern, reason, "
               "expires_on, all_scope, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::timestamptz)",
               (account, framework, check_id, pattern, f"accepted ({framework}, {check_id}, {pattern})", expires,
                not (account or framework or check_id or pattern), f"{created} 12:00:00+00"))
    db.execute("ALTER TABLE aws_policy_exceptions ENABLE TRIGGER aws_policy_exceptions_guard")
    db.commit()


def test_muting_over_history_is_exact_for_every_exception_shape(db):
    stage_history(db)
    for day in DAYS:
        run_new(db, day, f"run-{day}")
    # the earlier design's views (tests/history/legacy_views.sql) over a copy of every date's rows
    db.execute("CREATE TABLE legacy_results AS SELECT * FROM aws_policy_results")
    create_legacy_views(db)
    assert assert_muting_exact(db, "no exceptions") == 0

    a1, a2, a3 = ACCOUNTS
    first, second, middle, fourth, last = DAYS
    before = first - timedelta(days=30)
    shapes = {
        "account + framework + check + pattern": (before, last, a1, "cis_v3.0.0", "1.11", "%:user/user-1%"),
        "account + pattern with _": (second, last, a2, None, None, "%user-_"),
        "a whole check in one framework, from the middle": (middle, last, None, "cis_v3.0.0", "1.11", None),
        "one check id in every framework, expired on the middle date": (before, middle, None, None, "1.10", None),
        "one account in every framework, from the fourth date": (fourth, last, a3, None, None, None),
        "one framework, created after the last date": (last + timedelta(days=1), last + timedelta(days=9),
                                                       None, "cis_v1.2.0", None, None),
        "everything, on the second and middle dates": (second, middle, None, None, None, None),
        "a pattern matching nothing": (before, last, None, None, None, "%no-such-resource%"),
        "expired before the history": (before, first - timedelta(days=1), a1, None, None, None),
        "one account's check, overlapping the pattern ones": (first, fourth, a1, "cis_v3.0.0", "1.10", None),
    }
    muted_any = 0
    for name, shape in shapes.items():
        add_exception(db, *shape)
        muted_any += assert_muting_exact(db, name) > 0
        db.execute("DELETE FROM aws_policy_exceptions")
        db.commit()
    assert muted_any >= 7, "most shapes mute something on this history"

    # all together (overlapping: the exception expiring last, then the lowest id, is the one shown)
    for shape in shapes.values():
        add_exception(db, *shape)
    total = assert_muting_exact(db, "all shapes together")
    assert total > 0
    assert db.execute("SELECT count(DISTINCT snapshot_date) FROM aws_policy_muted_verdicts").fetchone()[0] == len(DAYS)
    assert db.execute("SELECT count(*) FROM aws_policy_muted_verdicts WHERE is_current").fetchone()[0] > 0
