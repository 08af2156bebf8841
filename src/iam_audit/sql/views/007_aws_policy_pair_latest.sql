-- Per (variant, account) of the history: the newest snapshot with verdicts
-- (latest_date, 'error' rows included) and the newest evaluated one
-- (latest_evaluated_date: no account-level 'error'). Read from aws_policy_pairs,
-- which the writers keep (sql/functions/011_history.sql). A building block of the
-- views below.
CREATE OR REPLACE VIEW aws_policy_pair_latest AS
SELECT variant_id, account_id, latest_date, latest_evaluated_date
FROM aws_policy_pairs;
