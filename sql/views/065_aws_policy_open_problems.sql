-- aws_policy_open_findings summed up per problem before the framework spread, for
-- rankings over every open finding (the Compliance page): one row per open failing
-- interval (variant x account x resource at the variant's latest evaluated date)
-- and severity, with the frameworks of that severity whose row of
-- aws_policy_open_findings is there (not muted). Expanding `frameworks` gives
-- exactly the (framework, account, resource, snapshot_date, severity,
-- first_failing_date) rows of aws_policy_open_findings; problem is the page's
-- grouping key, coalesce(control_logic, framework || ' ' || check_id).
-- Plan: the open intervals are read once; an interval no exception can reach
-- takes its frameworks from the scopes grouped per (date, variant, severity) (one
-- hash join, no row per framework); the others -- an exception scoped to its date,
-- framework/check, account and resource pattern exists, or the evaluation has no
-- control_logic (a database upgraded from the earlier design), where the problem is
-- per framework -- go through the framework rows and aws_policy_matching_exception
-- as aws_policy_open_findings does.
CREATE OR REPLACE VIEW aws_policy_open_problems AS
WITH open AS MATERIALIZED (
    SELECT o.*,
           o.control_logic IS NULL OR EXISTS (
               SELECT 1 FROM unnest(m.accounts, m.patterns) AS x (account_id, resource_pattern)
               WHERE (x.account_id IS NULL OR x.account_id = o.account_id)
                 AND (x.resource_pattern IS NULL OR o.resource_id LIKE x.resource_pattern)) AS exact
    FROM (
        SELECT pl.variant_id, pl.account_id, pl.latest_evaluated_date AS snapshot_date, e.control_logic,
               i.resource_id, i.resource_type, i.failing_since AS first_failing_date
        FROM aws_policy_pairs pl
        JOIN aws_policy_evaluations e
          ON e.snapshot_date = pl.latest_evaluated_date AND e.variant_id = pl.variant_id
         AND e.account_id = pl.account_id
        JOIN aws_policy_verdicts i
          ON i.variant_id = pl.variant_id AND i.account_id = pl.account_id AND i.status = 'fail'
         AND i.valid_from <= pl.latest_evaluated_date AND i.valid_to >= pl.latest_evaluated_date
    ) o
    -- per (date, variant): the account and resource scopes of the exceptions that could mute one of
    -- its framework rows (created by, and not expired on, that date; same framework / check)
    LEFT JOIN (
        SELECT s.snapshot_date, s.variant_id, array_agg(x.account_id) AS accounts,
               array_agg(x.resource_pattern) AS patterns
        FROM aws_policy_exceptions x
        JOIN aws_policy_scopes s
          ON s.snapshot_date <= x.expires_on AND s.snapshot_date >= (x.created_at AT TIME ZONE 'UTC')::date
         AND (x.framework IS NULL OR s.framework = x.framework)
         AND (x.check_id IS NULL OR s.check_id = x.check_id)
        GROUP BY s.snapshot_date, s.variant_id
    ) m ON m.snapshot_date = o.snapshot_date AND m.variant_id = o.variant_id
)
SELECT o.control_logic AS problem, o.account_id, o.resource_id, o.resource_type, o.snapshot_date,
       g.severity, g.frameworks, o.first_failing_date, o.snapshot_date - o.first_failing_date AS age_days
FROM open o
JOIN (
    SELECT snapshot_date, variant_id, severity, array_agg(framework ORDER BY framework) AS frameworks
    FROM aws_policy_scopes
    GROUP BY snapshot_date, variant_id, severity
) g ON g.snapshot_date = o.snapshot_date AND g.variant_id = o.variant_id
WHERE NOT o.exact
UNION ALL
SELECT coalesce(o.control_logic, s.framework || ' ' || s.check_id), o.account_id, o.resource_id, o.resource_type,
       o.snapshot_date, s.severity, array_agg(s.framework ORDER BY s.framework), o.first_failing_date,
       o.snapshot_date - o.first_failing_date
FROM open o
JOIN aws_policy_scopes s ON s.snapshot_date = o.snapshot_date AND s.variant_id = o.variant_id
WHERE o.exact
  AND NOT EXISTS (SELECT 1 FROM aws_policy_matching_exception(
                      o.snapshot_date, s.framework, s.check_id, o.account_id, o.resource_id, 'fail'))
GROUP BY o.variant_id, o.account_id, o.resource_id, 1, o.resource_type, o.snapshot_date, s.severity,
         o.first_failing_date;
