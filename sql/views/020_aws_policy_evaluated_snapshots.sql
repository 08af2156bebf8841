-- The snapshots in which a control was evaluated for an account: one row per
-- (framework, check_id, account_id, snapshot_date) that has verdicts and no
-- account-level 'error' (the check could not run because data was missing).
-- previous/next_snapshot_date are the neighbouring evaluated snapshots. The
-- change and streak views use the same definition (computed inline with window
-- functions), so a day on which an account could not be audited neither
-- "removes" nor "resolves" anything.
CREATE OR REPLACE VIEW aws_policy_evaluated_snapshots AS
SELECT s.framework, s.check_id, s.account_id, s.snapshot_date,
       lag(s.snapshot_date) OVER w AS previous_snapshot_date,
       lead(s.snapshot_date) OVER w AS next_snapshot_date,
       row_number() OVER w AS snapshot_seq,
       lead(s.snapshot_date) OVER w IS NULL AS is_latest
FROM (SELECT DISTINCT snapshot_date, framework, check_id, account_id FROM aws_policy_results) s
WHERE NOT EXISTS (
    SELECT 1 FROM aws_policy_results e
    WHERE e.snapshot_date = s.snapshot_date AND e.framework = s.framework
      AND e.check_id = s.check_id AND e.account_id = s.account_id
      AND e.resource_id = s.account_id AND e.status = 'error')
WINDOW w AS (PARTITION BY s.framework, s.check_id, s.account_id ORDER BY s.snapshot_date);
