-- the newest snapshot dates, for the trend
SELECT DISTINCT snapshot_date FROM aws_policy_accounts ORDER BY snapshot_date DESC LIMIT %(snapshots)s
