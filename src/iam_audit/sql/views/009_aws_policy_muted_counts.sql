-- Muted fails per snapshot x framework x control x account: the counts of
-- aws_policy_muted_verdicts grouped so (the muted_count of aws_policy_scores and
-- aws_policy_framework_scores), without listing every muted verdict where that
-- is not needed. An exception without resource_pattern that applies to a
-- (date, framework, control, account) -- created (UTC date) <= date <= expires_on,
-- account, framework and check matching or NULL -- mutes every fail of it, so
-- that group counts the fails of its evaluation (fail_count, the count
-- aws_policy_scores subtracts from) without reading an interval. Only the other
-- groups, reached by exceptions with a resource_pattern alone, count their muted
-- verdicts one by one. Exceptions of one account probe that account's
-- evaluations (primary key); those of every account read each date's. Only groups with at least one muted fail have a row.
CREATE OR REPLACE VIEW aws_policy_muted_counts AS
SELECT w.snapshot_date, w.framework, w.check_id, w.account_id, w.fail_count::bigint AS muted_count
FROM (
    SELECT s.snapshot_date, s.framework, s.check_id, e.account_id, e.fail_count
    FROM aws_policy_exceptions ex
    JOIN aws_policy_scopes s
      ON s.snapshot_date <= ex.expires_on
     AND s.snapshot_date >= (ex.created_at AT TIME ZONE 'UTC')::date
     AND (ex.framework IS NULL OR s.framework = ex.framework)
     AND (ex.check_id IS NULL OR s.check_id = ex.check_id)
    JOIN aws_policy_evaluations e
      ON e.snapshot_date = s.snapshot_date AND e.variant_id = s.variant_id AND e.error_reason IS NULL
     AND e.account_id = ex.account_id
    WHERE ex.resource_pattern IS NULL AND e.fail_count > 0 AND ex.account_id IS NOT NULL
    UNION
    SELECT s.snapshot_date, s.framework, s.check_id, e.account_id, e.fail_count
    FROM aws_policy_exceptions ex
    JOIN aws_policy_scopes s
      ON s.snapshot_date <= ex.expires_on
     AND s.snapshot_date >= (ex.created_at AT TIME ZONE 'UTC')::date
     AND (ex.framework IS NULL OR s.framework = ex.framework)
     AND (ex.check_id IS NULL OR s.check_id = ex.check_id)
    JOIN aws_policy_evaluations e
      ON e.snapshot_date = s.snapshot_date AND e.variant_id = s.variant_id AND e.error_reason IS NULL
    WHERE ex.resource_pattern IS NULL AND e.fail_count > 0 AND ex.account_id IS NULL
) w
UNION ALL
SELECT m.snapshot_date, m.framework, m.check_id, m.account_id, count(*) AS muted_count
FROM (
    SELECT e.snapshot_date, s.framework, s.check_id, e.account_id, i.resource_id
    FROM aws_policy_exceptions ex
    JOIN aws_policy_scopes s
      ON s.snapshot_date <= ex.expires_on
     AND s.snapshot_date >= (ex.created_at AT TIME ZONE 'UTC')::date
     AND (ex.framework IS NULL OR s.framework = ex.framework)
     AND (ex.check_id IS NULL OR s.check_id = ex.check_id)
    JOIN aws_policy_evaluations e
      ON e.snapshot_date = s.snapshot_date AND e.variant_id = s.variant_id AND e.error_reason IS NULL
     AND e.account_id = ex.account_id
    -- each evaluation's failing intervals, probed after the evaluation is found
    -- (OFFSET 0: not flattened, so a misjudged row count cannot turn the join around)
    CROSS JOIN LATERAL (
        SELECT v.resource_id FROM aws_policy_verdicts v
        WHERE v.variant_id = e.variant_id AND v.account_id = e.account_id AND v.status = 'fail'
          AND v.valid_from <= e.snapshot_date AND v.valid_to >= e.snapshot_date
          AND v.resource_id LIKE ex.resource_pattern
        OFFSET 0) i
    WHERE ex.resource_pattern IS NOT NULL AND ex.account_id IS NOT NULL
      -- groups an exception without pattern covers are counted whole above
      AND NOT EXISTS (
          SELECT 1 FROM aws_policy_exceptions w
          WHERE w.resource_pattern IS NULL
            AND s.snapshot_date <= w.expires_on AND s.snapshot_date >= (w.created_at AT TIME ZONE 'UTC')::date
            AND (w.framework IS NULL OR w.framework = s.framework)
            AND (w.check_id IS NULL OR w.check_id = s.check_id)
            AND (w.account_id IS NULL OR w.account_id = e.account_id))
    UNION
    SELECT e.snapshot_date, s.framework, s.check_id, e.account_id, i.resource_id
    FROM aws_policy_exceptions ex
    JOIN aws_policy_scopes s
      ON s.snapshot_date <= ex.expires_on
     AND s.snapshot_date >= (ex.created_at AT TIME ZONE 'UTC')::date
     AND (ex.framework IS NULL OR s.framework = ex.framework)
     AND (ex.check_id IS NULL OR s.check_id = ex.check_id)
    JOIN aws_policy_evaluations e
      ON e.snapshot_date = s.snapshot_date AND e.variant_id = s.variant_id AND e.error_reason IS NULL
    -- each evaluation's failing intervals, probed after the evaluation is found
    -- (OFFSET 0: not flattened, so a misjudged row count cannot turn the join around)
    CROSS JOIN LATERAL (
        SELECT v.resource_id FROM aws_policy_verdicts v
        WHERE v.variant_id = e.variant_id AND v.account_id = e.account_id AND v.status = 'fail'
          AND v.valid_from <= e.snapshot_date AND v.valid_to >= e.snapshot_date
          AND v.resource_id LIKE ex.resource_pattern
        OFFSET 0) i
    WHERE ex.resource_pattern IS NOT NULL AND ex.account_id IS NULL
      -- groups an exception without pattern covers are counted whole above
      AND NOT EXISTS (
          SELECT 1 FROM aws_policy_exceptions w
          WHERE w.resource_pattern IS NULL
            AND s.snapshot_date <= w.expires_on AND s.snapshot_date >= (w.created_at AT TIME ZONE 'UTC')::date
            AND (w.framework IS NULL OR w.framework = s.framework)
            AND (w.check_id IS NULL OR w.check_id = s.check_id)
            AND (w.account_id IS NULL OR w.account_id = e.account_id))
) m
WHERE EXISTS (SELECT 1 FROM aws_policy_matching_exception(
                  m.snapshot_date, m.framework, m.check_id, m.account_id, m.resource_id, 'fail'))
GROUP BY m.snapshot_date, m.framework, m.check_id, m.account_id;
