-- Every muted verdict: a 'fail' of a date that aws_policy_matching_exception
-- (sql/schema/035_exceptions.sql) matches, with the exception muting it. Driven
-- from the exceptions: only fails that an exception could match (same account,
-- framework, check, resource pattern, not expired; each a necessary condition of
-- the function, which alone decides) are handed to the function, so views that
-- count muted verdicts cost nothing while there are no exceptions.
-- is_current: the date is the newest with verdicts of the control in the account
-- (as aws_policy_latest.is_current).
CREATE OR REPLACE VIEW aws_policy_muted_verdicts AS
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
    c.snapshot_date, c.framework, c.check_id, c.account_id, c.resource_id, 'fail') x;
