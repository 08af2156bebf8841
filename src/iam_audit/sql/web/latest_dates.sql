-- the accounts' newest evaluated dates (usually one or two), for the accounts statement
SELECT DISTINCT latest_snapshot_date FROM aws_policy_account_freshness WHERE latest_snapshot_date IS NOT NULL
