-- Every muted verdict: a 'fail' of a date that aws_policy_matching_exception
-- (sql/functions/035_exceptions.sql) matches, with the exception muting it. Driven
-- from the exceptions: only fails that an exception could match (a date from the
-- exception's creation (UTC date) to its expires_on, same account, framework,
-- check, resource pattern; each a necessary condition of the function, which
-- alone decides) are handed to the function, so views that count muted verdicts
-- cost nothing while there are no exceptions, and an exception costs the fails
-- of the dates it can apply to (scopes by date, evaluations and failing
-- intervals through their indexes), not those of the whole history.
-- is_current: the date is the newest with verdicts of the control in the account
-- (as aws_policy_latest.is_current). It is a column of the candidates, so a filter
-- on it (the "muted findings expiring" tile) keeps only the newest evaluation of
-- each (variant, account) before any interval is read.
CREATE OR REPLACE VIEW aws_policy_muted_verdicts AS
SELECT c.snapshot_date, c.framework, c.check_id, c.account_id, c.resource_id, c.variant_id,
       x.exception_id, x.exception_reason, x.exception_expires_on, c.is_current
FROM (
    -- exceptions of one account: that account's evaluations (primary key probes)
    SELECT e.snapshot_date, s.framework, s.check_id, e.account_id, i.resource_id, e.variant_id,
           e.snapshot_date = n.latest_date AS is_current
    FROM aws_policy_exceptions ex
    JOIN aws_policy_scopes s
      ON s.snapshot_date <= ex.expires_on
     AND s.snapshot_date >= (ex.created_at AT TIME ZONE 'UTC')::date
     AND (ex.framework IS NULL OR s.framework = ex.framework)
     AND (ex.check_id IS NULL OR s.check_id = ex.check_id)
    JOIN aws_policy_evaluations e
      ON e.snapshot_date = s.snapshot_date AND e.variant_id = s.variant_id AND e.error_reason IS NULL
     AND e.account_id = ex.account_id
    LEFT JOIN aws_policy_pairs n ON n.variant_id = e.variant_id AND n.account_id = e.account_id
    -- each evaluation's failing intervals, probed after the evaluation is found
    -- (OFFSET 0: not flattened, so a misjudged row count cannot turn the join around)
    CROSS JOIN LATERAL (
        SELECT v.resource_id FROM aws_policy_verdicts v
        WHERE v.variant_id = e.variant_id AND v.account_id = e.account_id AND v.status = 'fail'
          AND v.valid_from <= e.snapshot_date AND v.valid_to >= e.snapshot_date
          AND (ex.resource_pattern IS NULL OR v.resource_id LIKE ex.resource_pattern)
        OFFSET 0) i
    WHERE ex.account_id IS NOT NULL
    UNION
    -- exceptions of every account
    SELECT e.snapshot_date, s.framework, s.check_id, e.account_id, i.resource_id, e.variant_id,
           e.snapshot_date = n.latest_date AS is_current
    FROM aws_policy_exceptions ex
    JOIN aws_policy_scopes s
      ON s.snapshot_date <= ex.expires_on
     AND s.snapshot_date >= (ex.created_at AT TIME ZONE 'UTC')::date
     AND (ex.framework IS NULL OR s.framework = ex.framework)
     AND (ex.check_id IS NULL OR s.check_id = ex.check_id)
    JOIN aws_policy_evaluations e
      ON e.snapshot_date = s.snapshot_date AND e.variant_id = s.variant_id AND e.error_reason IS NULL
    LEFT JOIN aws_policy_pairs n ON n.variant_id = e.variant_id AND n.account_id = e.account_id
    -- each evaluation's failing intervals, probed after the evaluation is found
    -- (OFFSET 0: not flattened, so a misjudged row count cannot turn the join around)
    CROSS JOIN LATERAL (
        SELECT v.resource_id FROM aws_policy_verdicts v
        WHERE v.variant_id = e.variant_id AND v.account_id = e.account_id AND v.status = 'fail'
          AND v.valid_from <= e.snapshot_date AND v.valid_to >= e.snapshot_date
          AND (ex.resource_pattern IS NULL OR v.resource_id LIKE ex.resource_pattern)
        OFFSET 0) i
    WHERE ex.account_id IS NULL
) c
CROSS JOIN LATERAL aws_policy_matching_exception(
    c.snapshot_date, c.framework, c.check_id, c.account_id, c.resource_id, 'fail') x;
