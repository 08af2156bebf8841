"""What the summary (summary.py) and the HTML report (report.py) read of one snapshot date,
from the stored history (sql/schema/011_history.sql) rather than from aws_policy_results,
which spreads every verdict over the frameworks its control logic answers (about 9 rows per
verdict) and tests each row against the exceptions:

- verdict counts per framework x control x account: aws_policy_scores (the per-evaluation
  counts the writer keeps, muted fails from aws_policy_muted_counts); no verdict is read;
- the worst verdict per control logic and resource: the evaluation counts where the logic
  has one variant in the account, the variants' intervals (once each, not per framework)
  where it has several;
- failing and 'error' verdicts: only those, from the evaluations that have any, spread over
  their frameworks; muted fails are the rows of aws_policy_muted_verdicts (driven by the
  exceptions), left out with an anti-join instead of testing every row.

Each reads exactly the rows the earlier statements over aws_policy_results(_effective) read
(tests/history/test_summary_report.py keeps those statements as the reference).
"""

from __future__ import annotations

SEVERITY_RANK_SQL = "CASE {0} WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END"


def _account_filter(alias: str, account_ids) -> tuple[str, list]:
    return (f" AND {alias}.account_id = ANY(%(accounts)s)", list(account_ids)) if account_ids else ("", [])


def scores(conn, snapshot_date, account_ids=None) -> list[tuple]:
    """(framework, check_id, account_id, title, pass, fail, error, muted) of every control and
    account with verdicts on the date (the rows of aws_policy_scores)."""
    where, accounts = _account_filter("s", account_ids)
    return conn.execute(
        f"""SELECT framework, check_id, account_id, title, pass_count, fail_count, error_count, muted_count
            FROM aws_policy_scores s WHERE snapshot_date = %(day)s{where}""",  # noqa: S608
        {"day": str(snapshot_date), "accounts": accounts},
    ).fetchall()


def worst_per_logic(conn, snapshot_date, account_ids=None) -> dict[str, tuple[int, int, int]]:
    """control_logic -> (pass, fail, error): each (account, resource) counted once, at its worst
    verdict over the variants (frameworks) of the logic."""
    where, accounts = _account_filter("e", account_ids)
    totals: dict[str, list[int]] = {}
    for logic, passed, failed, errors in conn.execute(
        f"""WITH e AS MATERIALIZED (
                SELECT e.variant_id, e.account_id, e.control_logic, e.error_reason,
                       e.pass_count, e.fail_count, e.error_count,
                       count(*) OVER (PARTITION BY e.control_logic, e.account_id) AS variants
                FROM aws_policy_evaluations e
                WHERE e.snapshot_date = %(day)s AND e.control_logic IS NOT NULL{where}
                  AND EXISTS (SELECT 1 FROM aws_policy_scopes s
                              WHERE s.snapshot_date = e.snapshot_date AND s.variant_id = e.variant_id)
            )
            -- one variant in the account: its counts are the resources' worst verdicts
            SELECT control_logic, sum(pass_count), sum(fail_count), sum(error_count)
            FROM e WHERE variants = 1 GROUP BY 1
            UNION ALL
            SELECT control_logic, count(*) FILTER (WHERE worst = 1), count(*) FILTER (WHERE worst = 2),
                   count(*) FILTER (WHERE worst = 3)
            FROM (SELECT e.control_logic, e.account_id, v.resource_id, max(v.rank) AS worst
                  FROM e
                  CROSS JOIN LATERAL (
                      SELECT i.resource_id,
                             CASE i.status WHEN 'pass' THEN 1 WHEN 'fail' THEN 2 WHEN 'error' THEN 3 END AS rank
                      FROM aws_policy_verdicts i
                      WHERE e.error_reason IS NULL AND i.variant_id = e.variant_id
                        AND i.account_id = e.account_id AND i.valid_from <= %(day)s AND i.valid_to >= %(day)s
                      UNION ALL
                      SELECT e.account_id, 3 WHERE e.error_reason IS NOT NULL
                  ) v
                  WHERE e.variants > 1
                  GROUP BY 1, 2, 3) w
            GROUP BY 1""",  # noqa: S608
        {"day": str(snapshot_date), "accounts": accounts},
    ).fetchall():
        row = totals.setdefault(logic, [0, 0, 0])
        row[0] += int(passed)
        row[1] += int(failed)
        row[2] += int(errors)
    return {logic: tuple(row) for logic, row in totals.items()}


def effective_fails_sql(account_ids=None) -> tuple[str, list]:
    """CTEs `muted` and `fails`: every effective 'fail' row of aws_policy_results_effective of
    %(day)s (framework, check_id, title, severity, account_id, control_logic, resource_id,
    resource_type, reason), and the parameter list of the account filter."""
    where, accounts = _account_filter("e", account_ids)
    return f"""
        muted AS MATERIALIZED (
            SELECT framework, check_id, account_id, resource_id
            FROM aws_policy_muted_verdicts WHERE snapshot_date = %(day)s
        ),
        fails AS (
            SELECT s.framework, s.check_id, s.title, s.severity, e.account_id, e.control_logic,
                   i.resource_id, i.resource_type, i.reason
            FROM aws_policy_evaluations e
            JOIN aws_policy_scopes s ON s.snapshot_date = e.snapshot_date AND s.variant_id = e.variant_id
            JOIN aws_policy_verdicts i
              ON i.variant_id = e.variant_id AND i.account_id = e.account_id AND i.status = 'fail'
             AND i.valid_from <= e.snapshot_date AND i.valid_to >= e.snapshot_date
            WHERE e.snapshot_date = %(day)s AND e.error_reason IS NULL AND e.fail_count > 0{where}
              AND NOT EXISTS (SELECT 1 FROM muted m
                              WHERE m.framework = s.framework AND m.check_id = s.check_id
                                AND m.account_id = e.account_id AND m.resource_id = i.resource_id)
        )""", accounts  # noqa: S608


def errors_by_reason(conn, snapshot_date) -> list[tuple]:
    """(account_id, reason, controls) of the date's 'error' verdicts, one row per account and
    reason; controls lists 'framework check_id' once per verdict, by framework and check."""
    return conn.execute(
        """WITH err AS (
               SELECT e.account_id, e.variant_id, i.reason
               FROM aws_policy_evaluations e
               JOIN aws_policy_verdicts i
                 ON i.variant_id = e.variant_id AND i.account_id = e.account_id AND i.status = 'error'
                AND i.valid_from <= e.snapshot_date AND i.valid_to >= e.snapshot_date
               WHERE e.snapshot_date = %(day)s AND e.error_reason IS NULL AND e.error_count > 0
               UNION ALL
               SELECT e.account_id, e.variant_id, 'Could not evaluate: ' || e.error_reason
               FROM aws_policy_evaluations e
               WHERE e.snapshot_date = %(day)s AND e.error_reason IS NOT NULL
           )
           SELECT err.account_id, err.reason,
                  string_agg(s.framework || ' ' || s.check_id, ', ' ORDER BY s.framework, s.check_id) AS controls
           FROM err JOIN aws_policy_scopes s ON s.snapshot_date = %(day)s AND s.variant_id = err.variant_id
           GROUP BY err.account_id, err.reason ORDER BY err.account_id, err.reason""",
        {"day": str(snapshot_date)},
    ).fetchall()


def freshness(conn, account_ids) -> dict[str, dict]:
    """account_id -> its aws_policy_account_freshness row, for the given accounts."""
    cur = conn.execute("SELECT * FROM aws_policy_account_freshness WHERE account_id = ANY(%s)", (list(account_ids),))
    names = [c.name for c in cur.description]
    return {row[names.index("account_id")]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
