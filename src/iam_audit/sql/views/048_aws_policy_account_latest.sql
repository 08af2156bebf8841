-- The newest snapshot of each account and framework (the newest date on which
-- any control of the framework has verdicts for the account) with its raw
-- verdict counts (muted fails count as fails) and the newest run_id: the
-- Compliance page's overview without reading the verdict history.
CREATE OR REPLACE VIEW aws_policy_account_latest AS
SELECT f.account_id, f.framework, f.snapshot_date,
       sum(e.pass_count)::bigint AS pass_count, sum(e.fail_count)::bigint AS fail_count,
       sum(e.error_count)::bigint AS error_count, max(e.run_id) AS run_id
FROM (
    SELECT pl.account_id, s.framework, max(pl.latest_date) AS snapshot_date
    FROM aws_policy_pair_latest pl
    JOIN aws_policy_scopes s ON s.snapshot_date = pl.latest_date AND s.variant_id = pl.variant_id
    GROUP BY pl.account_id, s.framework
) f
JOIN aws_policy_scopes s ON s.snapshot_date = f.snapshot_date AND s.framework = f.framework
JOIN aws_policy_evaluations e
  ON e.snapshot_date = f.snapshot_date AND e.variant_id = s.variant_id AND e.account_id = f.account_id
WHERE e.pass_count + e.fail_count + e.error_count > 0
GROUP BY f.account_id, f.framework, f.snapshot_date;
