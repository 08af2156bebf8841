-- Per (variant, account) of the history: the newest snapshot with verdicts
-- (latest_date, 'error' rows included) and the newest evaluated one
-- (latest_evaluated_date: no account-level 'error'). The pairs are found with a
-- skip scan of the evaluation index, so this costs one index probe per pair,
-- not a read of every evaluation. A building block of the views below.
CREATE OR REPLACE VIEW aws_policy_pair_latest AS
WITH RECURSIVE pairs (variant_id, account_id) AS (
    (SELECT variant_id, account_id FROM aws_policy_evaluations ORDER BY variant_id, account_id LIMIT 1)
    UNION ALL
    SELECT n.variant_id, n.account_id
    FROM pairs p
    CROSS JOIN LATERAL (
        SELECT e.variant_id, e.account_id FROM aws_policy_evaluations e
        WHERE (e.variant_id, e.account_id) > (p.variant_id, p.account_id)
        ORDER BY e.variant_id, e.account_id LIMIT 1
    ) n
)
SELECT p.variant_id, p.account_id,
       (SELECT e.snapshot_date FROM aws_policy_evaluations e
        WHERE e.variant_id = p.variant_id AND e.account_id = p.account_id
          AND e.pass_count + e.fail_count + e.error_count > 0
        ORDER BY e.snapshot_date DESC LIMIT 1) AS latest_date,
       (SELECT e.snapshot_date FROM aws_policy_evaluations e
        WHERE e.variant_id = p.variant_id AND e.account_id = p.account_id
          AND e.evaluated AND e.pass_count + e.fail_count + e.error_count > 0
        ORDER BY e.snapshot_date DESC LIMIT 1) AS latest_evaluated_date
FROM pairs p;
