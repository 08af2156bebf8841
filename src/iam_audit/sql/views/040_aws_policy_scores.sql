-- Counts per snapshot x framework x control x account, by effective status.
-- pass_rate = pass / (pass + fail) as a fraction 0..1 (4 decimals): muted fails
-- and errors are in neither numerator nor denominator; NULL when there is no
-- pass and no fail. To aggregate, sum the counts, never average pass_rate.
-- Read from the per-evaluation counts the writer keeps (no verdict is scanned);
-- muted fails come from aws_policy_muted_counts (sql/views/009).
CREATE OR REPLACE VIEW aws_policy_scores AS
SELECT e.snapshot_date, s.framework, s.check_id, e.account_id, s.title, s.severity,
       e.pass_count::bigint AS pass_count,
       (e.fail_count - coalesce(m.muted, 0))::bigint AS fail_count,
       e.error_count::bigint AS error_count,
       coalesce(m.muted, 0)::bigint AS muted_count,
       (e.pass_count + e.fail_count + e.error_count)::bigint AS total_count,
       round(e.pass_count::numeric / nullif(e.pass_count + e.fail_count - coalesce(m.muted, 0), 0), 4) AS pass_rate
FROM aws_policy_evaluations e
JOIN aws_policy_scopes s ON s.snapshot_date = e.snapshot_date AND s.variant_id = e.variant_id
LEFT JOIN (
    SELECT snapshot_date, framework, check_id, account_id, muted_count AS muted
    FROM aws_policy_muted_counts
) m ON m.snapshot_date = e.snapshot_date AND m.framework = s.framework AND m.check_id = s.check_id
   AND m.account_id = e.account_id
WHERE e.pass_count + e.fail_count + e.error_count > 0;
