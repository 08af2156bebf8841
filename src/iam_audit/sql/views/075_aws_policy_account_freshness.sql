-- How fresh each audited account's verdicts are, for "stale account" warnings:
--   latest_snapshot_date  the newest snapshot in which the account has evaluated
--                         verdicts (not only account-level 'error' verdicts);
--                         NULL when it never had any
--   latest_run_date       the newest snapshot date of any account
--   extracted_at          when the data of latest_snapshot_date was extracted
--   snapshot_age_days     latest_run_date - latest_snapshot_date (0 = current)
--   is_stale              latest_snapshot_date < latest_run_date (true when never evaluated)
-- account_name is the newest name staged for the account. Read from the
-- newest dates kept per (variant, account) (aws_policy_pairs, sql/functions/011_history.sql).
CREATE OR REPLACE VIEW aws_policy_account_freshness AS
WITH per_account AS (
    SELECT account_id, max(latest_evaluated_date) AS latest_snapshot_date
    FROM aws_policy_pairs
    GROUP BY account_id
),
run AS (
    SELECT max(snapshot_date) AS latest_run_date FROM aws_policy_evaluations
)
SELECT p.account_id,
       (SELECT n.account_name FROM iam_stage.accounts n
        WHERE n.account_id = p.account_id ORDER BY n.snapshot_date DESC LIMIT 1) AS account_name,
       p.latest_snapshot_date, run.latest_run_date, a.extracted_at,
       run.latest_run_date - p.latest_snapshot_date AS snapshot_age_days,
       coalesce(p.latest_snapshot_date < run.latest_run_date, true) AS is_stale
FROM per_account p
CROSS JOIN run
LEFT JOIN iam_stage.accounts a
       ON a.snapshot_date = p.latest_snapshot_date AND a.account_id = p.account_id;
