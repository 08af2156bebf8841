-- Findings open now: resources whose verdict is an unmuted 'fail' in the latest
-- evaluated snapshot of their control in their account. first_failing_date
-- starts the current unbroken failing streak: consecutive evaluated snapshots
-- with a raw 'fail' (muted days count as failing; a 'pass' or the resource's
-- absence breaks the streak; snapshots where the account could not be evaluated
-- are skipped). age_days = snapshot_date - first_failing_date (0 = new today).
-- From the history: the failing intervals covering each (variant, account)'s
-- latest evaluated date; the streak walks back interval by interval (a reason
-- that changes while the resource keeps failing starts a new interval, not a
-- new streak).
CREATE OR REPLACE VIEW aws_policy_open_findings AS
SELECT s.framework, s.check_id, l.account_id, i.resource_id, l.snapshot_date,
       s.title, s.severity, i.resource_type, i.reason,
       st.first_failing_date, l.snapshot_date - st.first_failing_date AS age_days,
       l.control_logic
FROM (
    SELECT pl.variant_id, pl.account_id, pl.latest_evaluated_date AS snapshot_date, e.control_logic
    FROM aws_policy_pair_latest pl
    JOIN aws_policy_evaluations e
      ON e.snapshot_date = pl.latest_evaluated_date AND e.variant_id = pl.variant_id
     AND e.account_id = pl.account_id
) l
JOIN aws_policy_scopes s ON s.snapshot_date = l.snapshot_date AND s.variant_id = l.variant_id
JOIN aws_policy_verdicts i
  ON i.variant_id = l.variant_id AND i.account_id = l.account_id AND i.status = 'fail'
 AND i.valid_from <= l.snapshot_date AND i.valid_to >= l.snapshot_date
CROSS JOIN LATERAL (
    WITH RECURSIVE walk (valid_from) AS (
        SELECT i.valid_from
        UNION ALL
        SELECT f.valid_from
        FROM walk w
        CROSS JOIN LATERAL (
            SELECT p.snapshot_date FROM aws_policy_evaluations p
            WHERE p.variant_id = i.variant_id AND p.account_id = i.account_id AND p.snapshot_date < w.valid_from
              AND p.evaluated AND p.pass_count + p.fail_count + p.error_count > 0
            ORDER BY p.snapshot_date DESC LIMIT 1
        ) pd
        JOIN aws_policy_verdicts f
          ON f.variant_id = i.variant_id AND f.account_id = i.account_id AND f.resource_id = i.resource_id
         AND f.status = 'fail' AND f.valid_from <= pd.snapshot_date AND f.valid_to >= pd.snapshot_date
    )
    SELECT min(valid_from) AS first_failing_date FROM walk
) st
LEFT JOIN LATERAL aws_policy_matching_exception(
    l.snapshot_date, s.framework, s.check_id, l.account_id, i.resource_id, 'fail') x ON true
WHERE x.exception_id IS NULL;
