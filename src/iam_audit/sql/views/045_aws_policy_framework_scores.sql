-- Org-wide counts per snapshot x framework by effective status (the sums of
-- aws_policy_scores over controls and accounts), for trend tiles over long
-- histories: read from per-evaluation counts summed per variant before they are
-- spread over the frameworks. raw_fail_count counts muted fails as fails (the
-- raw status). accounts: the most accounts any control of the framework had
-- verdicts for that day (every control of a run evaluates the same accounts).
CREATE OR REPLACE VIEW aws_policy_framework_scores AS
SELECT t.snapshot_date, t.framework,
       t.pass_count, t.fail_count - coalesce(m.muted, 0) AS fail_count, t.error_count,
       coalesce(m.muted, 0) AS muted_count, t.pass_count + t.fail_count + t.error_count AS total_count,
       t.fail_count AS raw_fail_count, t.accounts,
       round(t.pass_count::numeric / nullif(t.pass_count + t.fail_count - coalesce(m.muted, 0), 0), 4) AS pass_rate
FROM (
    SELECT s.snapshot_date, s.framework, sum(v.pass_count)::bigint AS pass_count,
           sum(v.fail_count)::bigint AS fail_count, sum(v.error_count)::bigint AS error_count,
           max(v.accounts)::bigint AS accounts
    FROM aws_policy_scopes s
    JOIN (
        SELECT snapshot_date, variant_id, sum(pass_count) AS pass_count, sum(fail_count) AS fail_count,
               sum(error_count) AS error_count,
               count(*) FILTER (WHERE pass_count + fail_count + error_count > 0) AS accounts
        FROM aws_policy_evaluations
        GROUP BY snapshot_date, variant_id
    ) v ON v.snapshot_date = s.snapshot_date AND v.variant_id = s.variant_id
    GROUP BY s.snapshot_date, s.framework
) t
LEFT JOIN (
    SELECT snapshot_date, framework, sum(muted_count)::bigint AS muted
    FROM aws_policy_muted_counts
    GROUP BY snapshot_date, framework
) m ON m.snapshot_date = t.snapshot_date AND m.framework = t.framework
WHERE t.pass_count + t.fail_count + t.error_count > 0;
