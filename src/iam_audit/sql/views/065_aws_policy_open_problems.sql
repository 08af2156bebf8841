-- aws_policy_open_findings summed up before the framework spread, for rankings over
-- every open finding (the Compliance page): one row per open failing interval
-- (variant x account x resource at the pair's latest evaluated date) and severity,
-- with the frameworks of that severity whose row of aws_policy_open_findings is
-- there (not muted). Expanding `frameworks` gives exactly the (framework, account,
-- resource, snapshot_date, severity, first_failing_date) rows of
-- aws_policy_open_findings; `problem` is the page's grouping key,
-- coalesce(control_logic, framework || ' ' || check_id).
-- Plan: everything per (variant, account) pair is settled first, on the ~11,000 pairs
-- (materialized: the planner misjudges the row counts of these joins, and once chose
-- a plan 30x slower); then one index probe per pair for its failing intervals. The
-- exceptions are matched to pairs by (date, variant) and account (hash joins on the few
-- (date, variant, account) they reach), so an exception of one account costs the other
-- accounts' pairs nothing. The probe ranges over valid_to (`valid_from + 0` keeps the
-- planner off the valid_from index, which would also read every failing interval the
-- pair closed in its history). Three disjoint parts:
--   1. intervals no exception can reach: the frameworks come from the scopes grouped
--      per (date, variant, severity) -- only for the few (date, variant)s the pairs are
--      read at -- one row per interval and severity, no framework rows;
--   2. intervals an exception with a resource_pattern can reach (created by and not
--      expired on the date, same framework / check as one of the variant's scopes, same
--      account, resource_pattern LIKE; none while there are no exceptions): every
--      framework row through aws_policy_matching_exception, as in
--      aws_policy_open_findings. An exception without resource_pattern mutes whole
--      framework rows of a pair: part 1 leaves those rows out of its frameworks (only
--      for the pairs such an exception reaches: its date, variant and account) instead;
--   3. evaluations without control_logic (a database upgraded from the earlier design):
--      the problem is per framework row; skipped at once while there are none (a
--      partial index answers that).
CREATE OR REPLACE VIEW aws_policy_open_problems AS
WITH latest AS (
    -- the (date, variant)s the open findings are read at: a few per variant
    SELECT DISTINCT latest_evaluated_date AS snapshot_date, variant_id FROM aws_policy_pairs
    WHERE latest_evaluated_date IS NOT NULL
), reach AS (
    -- per such (date, variant): the exceptions that could mute one of its framework rows (their account:
    -- NULL for every account), without a resource_pattern (`whole`) or with one
    SELECT DISTINCT l.snapshot_date, l.variant_id, x.account_id, x.resource_pattern
    FROM latest l
    JOIN aws_policy_scopes s ON s.snapshot_date = l.snapshot_date AND s.variant_id = l.variant_id
    JOIN aws_policy_exceptions x
      ON s.snapshot_date <= x.expires_on AND s.snapshot_date >= (x.created_at AT TIME ZONE 'UTC')::date
     AND (x.framework IS NULL OR s.framework = x.framework)
     AND (x.check_id IS NULL OR s.check_id = x.check_id)
), patterns AS (
    SELECT snapshot_date, variant_id, account_id, array_agg(resource_pattern) AS patterns
    FROM reach WHERE resource_pattern IS NOT NULL
    GROUP BY snapshot_date, variant_id, account_id
), whole AS (
    SELECT DISTINCT snapshot_date, variant_id, account_id FROM reach WHERE resource_pattern IS NULL
), pairs AS MATERIALIZED (
    -- per pair with a control_logic at its latest evaluated date, and severity: the frameworks and
    -- the exceptions that could reach it
    SELECT pl.variant_id, pl.account_id, pl.latest_evaluated_date AS snapshot_date, e.control_logic,
           g.severity,
           -- the framework rows an exception without resource_pattern mutes (every fail of the pair in
           -- them) are left out here; only patterned exceptions send intervals to part 2
           CASE WHEN wa.variant_id IS NOT NULL OR wo.variant_id IS NOT NULL THEN (
               SELECT array_agg(s.framework ORDER BY s.framework) FROM aws_policy_scopes s
               WHERE s.snapshot_date = pl.latest_evaluated_date AND s.variant_id = pl.variant_id
                 AND s.severity = g.severity
                 AND NOT EXISTS (
                     SELECT 1 FROM aws_policy_exceptions x
                     WHERE x.resource_pattern IS NULL
                       AND s.snapshot_date <= x.expires_on AND s.snapshot_date >= (x.created_at AT TIME ZONE 'UTC')::date
                       AND (x.framework IS NULL OR x.framework = s.framework)
                       AND (x.check_id IS NULL OR x.check_id = s.check_id)
                       AND (x.account_id IS NULL OR x.account_id = pl.account_id)))
           ELSE g.frameworks END AS frameworks,
           CASE WHEN pa.variant_id IS NOT NULL OR po.variant_id IS NOT NULL
                THEN coalesce(pa.patterns, '{}') || coalesce(po.patterns, '{}') END AS patterns
    FROM aws_policy_pairs pl
    JOIN aws_policy_evaluations e
      ON e.snapshot_date = pl.latest_evaluated_date AND e.variant_id = pl.variant_id
     AND e.account_id = pl.account_id
    JOIN (
        SELECT l.snapshot_date, l.variant_id, s.severity, array_agg(s.framework ORDER BY s.framework) AS frameworks
        FROM latest l
        JOIN aws_policy_scopes s ON s.snapshot_date = l.snapshot_date AND s.variant_id = l.variant_id
        GROUP BY l.snapshot_date, l.variant_id, s.severity
    ) g ON g.snapshot_date = pl.latest_evaluated_date AND g.variant_id = pl.variant_id
    -- the exceptions of the pair's (date, variant) for every account, and for the pair's account
    LEFT JOIN whole wa ON wa.snapshot_date = pl.latest_evaluated_date AND wa.variant_id = pl.variant_id
                      AND wa.account_id IS NULL
    LEFT JOIN whole wo ON wo.snapshot_date = pl.latest_evaluated_date AND wo.variant_id = pl.variant_id
                      AND wo.account_id = pl.account_id
    LEFT JOIN patterns pa ON pa.snapshot_date = pl.latest_evaluated_date AND pa.variant_id = pl.variant_id
                         AND pa.account_id IS NULL
    LEFT JOIN patterns po ON po.snapshot_date = pl.latest_evaluated_date AND po.variant_id = pl.variant_id
                         AND po.account_id = pl.account_id
    WHERE e.control_logic IS NOT NULL
)
SELECT p.control_logic AS problem, p.account_id, i.resource_id, i.resource_type, p.snapshot_date, p.severity,
       p.frameworks, i.failing_since AS first_failing_date, p.snapshot_date - i.failing_since AS age_days
FROM pairs p
JOIN aws_policy_verdicts i
  ON i.variant_id = p.variant_id AND i.account_id = p.account_id AND i.status = 'fail'
 AND i.valid_to >= p.snapshot_date AND i.valid_from + 0 <= p.snapshot_date
WHERE p.frameworks IS NOT NULL
  AND (p.patterns IS NULL OR NOT i.resource_id LIKE ANY (p.patterns))
UNION ALL
SELECT o.control_logic, o.account_id, o.resource_id, o.resource_type, o.snapshot_date, o.severity, f.frameworks,
       o.failing_since, o.snapshot_date - o.failing_since
FROM (
    -- the reached intervals, one index probe per pair (OFFSET 0: never one per framework row)
    SELECT p.variant_id, p.account_id, p.snapshot_date, p.control_logic, p.severity,
           i.resource_id, i.resource_type, i.failing_since
    FROM pairs p
    JOIN aws_policy_verdicts i
      ON i.variant_id = p.variant_id AND i.account_id = p.account_id AND i.status = 'fail'
     AND i.valid_to >= p.snapshot_date AND i.valid_from + 0 <= p.snapshot_date
    WHERE p.patterns IS NOT NULL AND i.resource_id LIKE ANY (p.patterns)
    OFFSET 0
) o
CROSS JOIN LATERAL (
    SELECT array_agg(s.framework ORDER BY s.framework) AS frameworks
    FROM aws_policy_scopes s
    WHERE s.snapshot_date = o.snapshot_date AND s.variant_id = o.variant_id AND s.severity = o.severity
      AND NOT EXISTS (SELECT 1 FROM aws_policy_matching_exception(
                          o.snapshot_date, s.framework, s.check_id, o.account_id, o.resource_id, 'fail'))
) f
WHERE f.frameworks IS NOT NULL
UNION ALL
SELECT s.framework || ' ' || s.check_id, pl.account_id, i.resource_id, i.resource_type, pl.latest_evaluated_date,
       s.severity, ARRAY[s.framework], i.failing_since, pl.latest_evaluated_date - i.failing_since
FROM aws_policy_evaluations e
JOIN aws_policy_pairs pl
  ON pl.latest_evaluated_date = e.snapshot_date AND pl.variant_id = e.variant_id AND pl.account_id = e.account_id
JOIN aws_policy_verdicts i
  ON i.variant_id = pl.variant_id AND i.account_id = pl.account_id AND i.status = 'fail'
 AND i.valid_from <= pl.latest_evaluated_date AND i.valid_to >= pl.latest_evaluated_date
JOIN aws_policy_scopes s ON s.snapshot_date = pl.latest_evaluated_date AND s.variant_id = pl.variant_id
WHERE EXISTS (SELECT 1 FROM aws_policy_evaluations WHERE control_logic IS NULL)
  AND e.control_logic IS NULL
  AND NOT EXISTS (SELECT 1 FROM aws_policy_matching_exception(
                      pl.latest_evaluated_date, s.framework, s.check_id, pl.account_id, i.resource_id, 'fail'));
