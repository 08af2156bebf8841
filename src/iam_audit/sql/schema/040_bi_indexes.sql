-- Indexes for the BI views (sql/views). The history tables carry their own
-- (sql/schema/011_history.sql); the earlier design's indexes on the results
-- table go with it (sql/schema/012_migrate_results.sql).
CREATE INDEX IF NOT EXISTS aws_policy_exceptions_expires_idx ON aws_policy_exceptions (expires_on);
-- aws_policy_account_freshness names each account after its newest staged row: an index
-- probe per account rather than a scan of every staged row (per account: quadratic).
CREATE INDEX IF NOT EXISTS accounts_account_date_idx ON iam_stage.accounts (account_id, snapshot_date);
