"""What the summary (summary.py) and the HTML report (report.py) read of one snapshot date,
from the stored history (sql/functions/011_history.sql) rather than from aws_policy_results,
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

from iam_audit.vocabulary import SEVERITIES, severity_rank_sql

# low and anything unknown rank last, together
SEVERITY_RANK_SQL = severity_rank_sql("{0}", unknown=len(SEVERITIES) - 1)


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


def _fail_ctes(account_ids) -> tuple[str, list]:
    """CTEs over the effective 'fail' rows of aws_policy_results_effective of %(day)s:
    fv      each failing verdict once per variant (not per framework), with `exact` where its
            (account, control logic, resource) has a muted row in some framework or the
            evaluation has no control_logic: only those need the rows spread over frameworks;
    spread  the effective fail rows of the exact ones (framework, check_id, title, severity,
            account_id, control_logic, resource_id, resource_type, reason)."""
    where, accounts = _account_filter("e", account_ids)
    return f"""
        mv AS MATERIALIZED (
            SELECT framework, check_id, account_id, resource_id, variant_id
            FROM aws_policy_muted_verdicts WHERE snapshot_date = %(day)s
        ),
        touched AS MATERIALIZED (
            SELECT DISTINCT mv.account_id, mv.resource_id, me.control_logic
            FROM mv JOIN aws_policy_evaluations me
              ON me.snapshot_date = %(day)s AND me.variant_id = mv.variant_id AND me.account_id = mv.account_id
        ),
        fv AS MATERIALIZED (
            SELECT e.account_id, e.control_logic, e.variant_id, i.resource_id, i.resource_type, i.reason,
                   e.control_logic IS NULL OR t.account_id IS NOT NULL AS exact
            FROM aws_policy_evaluations e
            JOIN aws_policy_verdicts i
              ON i.variant_id = e.variant_id AND i.account_id = e.account_id AND i.status = 'fail'
             AND i.valid_from <= e.snapshot_date AND i.valid_to >= e.snapshot_date
            LEFT JOIN touched t
              ON t.account_id = e.account_id AND t.resource_id = i.resource_id AND t.control_logic = e.control_logic
            WHERE e.snapshot_date = %(day)s AND e.error_reason IS NULL AND e.fail_count > 0{where}
              AND EXISTS (SELECT 1 FROM aws_policy_scopes s
                          WHERE s.snapshot_date = e.snapshot_date AND s.variant_id = e.variant_id)
        ),
        spread AS (
            SELECT s.framework, s.check_id, s.title, s.severity, fv.account_id, fv.control_logic,
                   fv.resource_id, fv.resource_type, fv.reason
            FROM fv JOIN aws_policy_scopes s ON s.snapshot_date = %(day)s AND s.variant_id = fv.variant_id
            WHERE fv.exact
              AND NOT EXISTS (SELECT 1 FROM mv
                              WHERE mv.framework = s.framework AND mv.check_id = s.check_id
                                AND mv.account_id = fv.account_id AND mv.resource_id = fv.resource_id)
        )""", accounts  # noqa: S608


def worst_findings(conn, snapshot_date, account_ids, per_account: int) -> list[tuple]:
    """Per account, its `per_account` worst effective fails (account_id, framework, check_id,
    severity, resource_id, reason): each (control logic, resource) once, as its newest framework's
    row, most severe first, then newest framework, check and resource."""
    ctes, accounts = _fail_ctes(account_ids)
    severity = SEVERITY_RANK_SQL.format("severity")
    return conn.execute(
        f"""WITH {ctes},
            top AS MATERIALIZED (
                SELECT DISTINCT ON (variant_id) variant_id, framework, check_id, severity
                FROM aws_policy_scopes WHERE snapshot_date = %(day)s
                ORDER BY variant_id, framework DESC, check_id
            ),
            chosen AS (
                -- nothing muted: every framework of the failing variants fails, the newest one is shown
                (SELECT DISTINCT ON (fv.account_id, fv.control_logic, fv.resource_id)
                        fv.account_id, t.framework, t.check_id, t.severity, fv.resource_id, fv.reason
                 FROM fv JOIN top t USING (variant_id)
                 WHERE NOT fv.exact
                 ORDER BY fv.account_id, fv.control_logic, fv.resource_id, t.framework DESC)
                UNION ALL
                (SELECT DISTINCT ON (account_id, control_logic, resource_id)
                        account_id, framework, check_id, severity, resource_id, reason
                 FROM spread
                 ORDER BY account_id, control_logic, resource_id, framework DESC)
            )
            SELECT account_id, framework, check_id, severity, resource_id, reason FROM (
                SELECT *, row_number() OVER (PARTITION BY account_id
                                             ORDER BY {severity}, framework DESC, check_id, resource_id) AS n
                FROM chosen
            ) ranked WHERE n <= %(n)s ORDER BY account_id, n""",  # noqa: S608
        {"day": str(snapshot_date), "accounts": accounts, "n": per_account},
    ).fetchall()


def top_failing(conn, snapshot_date, limit: int) -> list[tuple]:
    """The `limit` first failing (account, control logic, resource) groups (account_id, resource_id,
    resource_type, severity_rank, controls, title, reason), by severity rank, account, controls and
    resource; controls lists every framework control the resource fails. Only the groups up to the
    limit's (severity rank, account) are spread over their frameworks."""
    ctes, accounts = _fail_ctes(None)
    severity = SEVERITY_RANK_SQL.format("severity")
    aggregates = f"""max(resource_type) AS resource_type, min({severity}) AS severity_rank,
                   string_agg(framework || ' ' || check_id, ', ' ORDER BY framework, check_id) AS controls,
                   (array_agg(title ORDER BY framework DESC))[1] AS title,
                   (array_agg(reason ORDER BY framework DESC))[1] AS reason"""
    return conn.execute(
        f"""WITH {ctes},
            vs AS MATERIALIZED (
                SELECT variant_id, min({severity}) AS severity_rank
                FROM aws_policy_scopes WHERE snapshot_date = %(day)s GROUP BY variant_id
            ),
            fast AS MATERIALIZED (
                SELECT fv.account_id, fv.control_logic, fv.resource_id, min(vs.severity_rank) AS severity_rank
                FROM fv JOIN vs USING (variant_id) WHERE NOT fv.exact GROUP BY 1, 2, 3
            ),
            exact AS MATERIALIZED (
                SELECT account_id, resource_id, {aggregates}
                FROM spread GROUP BY account_id, coalesce(control_logic, check_id), resource_id
            ),
            cut AS (
                SELECT severity_rank, account_id
                FROM (SELECT severity_rank, account_id FROM fast
                      UNION ALL SELECT severity_rank, account_id FROM exact) k
                ORDER BY 1, 2 OFFSET %(limit)s - 1 LIMIT 1
            ),
            picked AS (
                SELECT s.framework, s.check_id, s.title, s.severity, fv.account_id, fv.control_logic,
                       fv.resource_id, fv.resource_type, fv.reason
                FROM fast f
                JOIN fv ON fv.account_id = f.account_id AND fv.control_logic = f.control_logic
                       AND fv.resource_id = f.resource_id AND NOT fv.exact
                JOIN aws_policy_scopes s ON s.snapshot_date = %(day)s AND s.variant_id = fv.variant_id
                WHERE NOT EXISTS (SELECT 1 FROM cut)
                   OR (f.severity_rank, f.account_id) <= (SELECT severity_rank, account_id FROM cut)
            )
            SELECT account_id, resource_id, {aggregates}
            FROM picked GROUP BY account_id, control_logic, resource_id
            UNION ALL
            SELECT * FROM exact
            ORDER BY severity_rank, account_id, controls, resource_id
            LIMIT %(limit)s""",  # noqa: S608
        {"day": str(snapshot_date), "accounts": accounts, "limit": limit},
    ).fetchall()


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
