-- The snapshots in which a control was evaluated for an account: one row per
-- (framework, check_id, account_id, snapshot_date) that has verdicts and no
-- account-level 'error' (the check could not run because data was missing).
-- previous/next_snapshot_date are the neighbouring evaluated snapshots. The
-- change and streak views use the same definition, so a day on which an account
-- could not be audited neither "removes" nor "resolves" anything.
-- Read from the evaluation records (sql/functions/011_history.sql), not the verdicts.
CREATE OR REPLACE VIEW aws_policy_evaluated_snapshots AS
SELECT s.framework, s.check_id, e.account_id, e.snapshot_date,
       lag(e.snapshot_date) OVER w AS previous_snapshot_date,
       lead(e.snapshot_date) OVER w AS next_snapshot_date,
       row_number() OVER w AS snapshot_seq,
       lead(e.snapshot_date) OVER w IS NULL AS is_latest
FROM aws_policy_evaluations e
JOIN aws_policy_scopes s ON s.snapshot_date = e.snapshot_date AND s.variant_id = e.variant_id
WHERE e.evaluated AND e.pass_count + e.fail_count + e.error_count > 0
WINDOW w AS (PARTITION BY s.framework, s.check_id, e.account_id ORDER BY e.snapshot_date);
