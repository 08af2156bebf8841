-- Every verdict of aws_policy_results with its effective_status:
-- 'muted' for a fail matched by an unexpired exception (aws_policy_exceptions),
-- otherwise the raw status. The base of the other views.
CREATE OR REPLACE VIEW aws_policy_results_effective AS
SELECT r.snapshot_date, r.framework, r.check_id, r.title, r.severity, r.account_id,
       r.resource_id, r.resource_type, r.status,
       CASE WHEN x.exception_id IS NOT NULL THEN 'muted' ELSE r.status END AS effective_status,
       r.reason, x.exception_id, x.exception_reason, x.exception_expires_on,
       r.control_logic, r.run_id, r.evaluated_at
FROM aws_policy_results r
LEFT JOIN LATERAL aws_policy_matching_exception(
    r.snapshot_date, r.framework, r.check_id, r.account_id, r.resource_id, r.status) x ON true;
