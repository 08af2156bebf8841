-- Indexes for the BI views (sql/views). The results key
-- (snapshot_date, framework, check_id, account_id, resource_id) already serves
-- per-snapshot reads and aws_policy_scores' grouping, and the exact lookup of a
-- control's account-level 'error' verdict in aws_policy_evaluated_snapshots.

-- One resource's history in date order: DISTINCT ON in aws_policy_latest and the
-- per-resource windows (lag/lead, streaks) of aws_policy_changes and
-- aws_policy_open_findings read it pre-sorted instead of sorting the table.
CREATE INDEX IF NOT EXISTS aws_policy_results_history_idx
    ON aws_policy_results (framework, check_id, account_id, resource_id, snapshot_date);

-- Dashboards filter by account and date range.
CREATE INDEX IF NOT EXISTS aws_policy_results_account_date_idx
    ON aws_policy_results (account_id, snapshot_date);

-- Open-findings style reads: only fails, per resource history.
CREATE INDEX IF NOT EXISTS aws_policy_results_fail_history_idx
    ON aws_policy_results (framework, check_id, account_id, resource_id, snapshot_date)
    WHERE status = 'fail';

CREATE INDEX IF NOT EXISTS aws_policy_exceptions_expires_idx ON aws_policy_exceptions (expires_on);
