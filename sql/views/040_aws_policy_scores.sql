-- Counts per snapshot x framework x control x account, by effective status.
-- pass_rate = pass / (pass + fail) as a fraction 0..1 (4 decimals): muted fails
-- and errors are in neither numerator nor denominator; NULL when there is no
-- pass and no fail. To aggregate, sum the counts, never average pass_rate.
CREATE OR REPLACE VIEW aws_policy_scores AS
SELECT snapshot_date, framework, check_id, account_id,
       max(title) AS title, max(severity) AS severity,
       count(*) FILTER (WHERE effective_status = 'pass') AS pass_count,
       count(*) FILTER (WHERE effective_status = 'fail') AS fail_count,
       count(*) FILTER (WHERE effective_status = 'error') AS error_count,
       count(*) FILTER (WHERE effective_status = 'muted') AS muted_count,
       count(*) AS total_count,
       round(count(*) FILTER (WHERE effective_status = 'pass')::numeric
             / nullif(count(*) FILTER (WHERE effective_status IN ('pass', 'fail')), 0), 4) AS pass_rate
FROM aws_policy_results_effective
GROUP BY snapshot_date, framework, check_id, account_id;
