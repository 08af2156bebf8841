-- The latest verdict of every (framework, check_id, account_id, resource_id):
-- the row of the newest snapshot_date that has a verdict for it. is_current is
-- true when that snapshot is also the newest one of the control in the account
-- (false for resources that have since disappeared, or when the newest run
-- could only record an account-level 'error').
CREATE OR REPLACE VIEW aws_policy_latest AS
SELECT r.framework, r.check_id, r.account_id, r.resource_id, r.snapshot_date,
       r.title, r.severity, r.resource_type, r.status,
       CASE WHEN x.exception_id IS NOT NULL THEN 'muted' ELSE r.status END AS effective_status,
       r.reason, x.exception_id, x.exception_reason, x.exception_expires_on,
       r.snapshot_date = max(r.snapshot_date) OVER (
           PARTITION BY r.framework, r.check_id, r.account_id) AS is_current,
       r.control_logic, r.run_id, r.evaluated_at
FROM (
    SELECT DISTINCT ON (framework, check_id, account_id, resource_id) *
    FROM aws_policy_results
    ORDER BY framework, check_id, account_id, resource_id, snapshot_date DESC
) r
LEFT JOIN LATERAL aws_policy_matching_exception(
    r.snapshot_date, r.framework, r.check_id, r.account_id, r.resource_id, r.status) x ON true;
