-- The latest verdict of every (framework, check_id, account_id, resource_id):
-- the row of the newest snapshot_date that has a verdict for it. is_current is
-- true when that snapshot is also the newest one of the control in the account
-- (false for resources that have since disappeared, or when the newest run
-- could only record an account-level 'error').
-- From the history: each resource's newest interval (its last covered date is
-- valid_to, or the newest complete evaluation while it is open) and each
-- account's newest incomplete evaluation (its account-level 'error').
CREATE OR REPLACE VIEW aws_policy_latest AS
SELECT r.framework, r.check_id, r.account_id, r.resource_id, r.snapshot_date,
       r.title, r.severity, r.resource_type, r.status,
       CASE WHEN x.exception_id IS NOT NULL THEN 'muted' ELSE r.status END AS effective_status,
       r.reason, x.exception_id, x.exception_reason, x.exception_expires_on,
       r.snapshot_date = max(r.snapshot_date) OVER (
           PARTITION BY r.framework, r.check_id, r.account_id) AS is_current,
       r.control_logic, r.run_id, r.evaluated_at
FROM (
    SELECT DISTINCT ON (s.framework, s.check_id, n.account_id, n.resource_id)
           s.framework, s.check_id, n.account_id, n.resource_id, n.snapshot_date, s.title, s.severity,
           n.resource_type, n.status, n.reason, e.control_logic, e.run_id, e.evaluated_at
    FROM (
        SELECT i.variant_id, i.account_id, i.resource_id, i.resource_type, i.status, i.reason,
               CASE WHEN i.valid_to <> 'infinity' THEN i.valid_to
                    ELSE (SELECT o.latest_complete_date FROM aws_policy_pairs o
                          WHERE o.variant_id = i.variant_id AND o.account_id = i.account_id) END AS snapshot_date
        FROM (
            SELECT DISTINCT ON (variant_id, account_id, resource_id) *
            FROM aws_policy_verdicts
            ORDER BY variant_id, account_id, resource_id, valid_from DESC
        ) i
        UNION ALL
        (SELECT DISTINCT ON (variant_id, account_id) variant_id, account_id, account_id, 'account', 'error',
                'Could not evaluate: ' || error_reason, snapshot_date
         FROM aws_policy_evaluations
         WHERE error_reason IS NOT NULL
         ORDER BY variant_id, account_id, snapshot_date DESC)
    ) n
    JOIN aws_policy_scopes s ON s.snapshot_date = n.snapshot_date AND s.variant_id = n.variant_id
    JOIN aws_policy_evaluations e
      ON e.snapshot_date = n.snapshot_date AND e.variant_id = n.variant_id AND e.account_id = n.account_id
    ORDER BY s.framework, s.check_id, n.account_id, n.resource_id, n.snapshot_date DESC
) r
LEFT JOIN LATERAL aws_policy_matching_exception(
    r.snapshot_date, r.framework, r.check_id, r.account_id, r.resource_id, r.status) x ON true;
