-- the run that wrote an account's verdicts of a date, for links to the run in the UI
SELECT k.account_id, k.snapshot_date,
       (SELECT r.run_id FROM aws_policy_runs r
        WHERE r.account_id = k.account_id AND r.snapshot_date = k.snapshot_date
        ORDER BY r.evaluated_at DESC LIMIT 1)
FROM unnest(%(accounts)s::text[], %(dates)s::date[]) AS k (account_id, snapshot_date)
