-- Findings open now: resources whose verdict is an unmuted 'fail' in the latest
-- evaluated snapshot of their control in their account. first_failing_date
-- starts the current unbroken failing streak: consecutive evaluated snapshots
-- with a raw 'fail' (muted days count as failing; a 'pass' or the resource's
-- absence breaks the streak; snapshots where the account could not be evaluated
-- are skipped). age_days = snapshot_date - first_failing_date (0 = new today).
CREATE OR REPLACE VIEW aws_policy_open_findings AS
WITH evaluated AS (
    -- verdicts of evaluated snapshots (an account-level 'error' is the only verdict of its snapshot),
    -- numbered per control and account, with the control's latest evaluated snapshot
    SELECT r.snapshot_date, r.framework, r.check_id, r.title, r.severity, r.account_id,
           r.resource_id, r.resource_type, r.status, r.reason, r.control_logic,
           dense_rank() OVER c AS snapshot_seq,
           max(r.snapshot_date) OVER (PARTITION BY r.framework, r.check_id, r.account_id) AS latest_date
    FROM aws_policy_results r
    WHERE NOT (r.status = 'error' AND r.resource_id = r.account_id)
    WINDOW c AS (PARTITION BY r.framework, r.check_id, r.account_id ORDER BY r.snapshot_date)
),
fails AS (
    SELECT e.*, e.snapshot_date = e.latest_date AS is_latest,
           e.snapshot_seq - row_number() OVER (
               PARTITION BY e.framework, e.check_id, e.account_id, e.resource_id
               ORDER BY e.snapshot_date) AS streak
    FROM evaluated e
    WHERE e.status = 'fail'
),
streaks AS (
    SELECT *, min(snapshot_date) OVER (
               PARTITION BY framework, check_id, account_id, resource_id, streak) AS first_failing_date
    FROM fails
)
SELECT f.framework, f.check_id, f.account_id, f.resource_id, f.snapshot_date,
       f.title, f.severity, f.resource_type, f.reason,
       f.first_failing_date, f.snapshot_date - f.first_failing_date AS age_days,
       f.control_logic
FROM streaks f
LEFT JOIN LATERAL aws_policy_matching_exception(
    f.snapshot_date, f.framework, f.check_id, f.account_id, f.resource_id, 'fail') x ON true
WHERE f.is_latest AND x.exception_id IS NULL;
