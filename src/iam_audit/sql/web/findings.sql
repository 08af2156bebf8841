-- one row per problem: control logic x account x resource, over every framework it violates; the
-- problems are ranked on aws_policy_open_problems (the open findings per interval and severity, before
-- they are spread over the frameworks) and only the shown ones collect their frameworks' texts.
-- The severity rank's CASE is generated from iam_audit.vocabulary.SEVERITIES; the filters and the
-- HAVING clause are fixed fragments of iam_audit.web.queries (FINDING_FILTERS), never text from the request
WITH ranked AS (
    SELECT problem, account_id, resource_id,
           min({severity_rank}) AS severity_rank,
           min(first_failing_date) AS first_failing_date, max(age_days) AS age_days,
           max(snapshot_date) AS snapshot_date, count(*) OVER () AS total
    FROM aws_policy_open_problems
    WHERE true {filters}
    GROUP BY 1, 2, 3
    {having}
    ORDER BY severity_rank, age_days DESC, first_failing_date, account_id, problem, resource_id
    LIMIT %(limit)s
)
SELECT r.problem, r.account_id, r.resource_id, r.severity_rank, r.first_failing_date, r.age_days,
       r.snapshot_date, v.frameworks, v.check_ids, v.titles, v.reasons, v.resource_type, r.total
FROM ranked r
CROSS JOIN LATERAL (
    SELECT array_agg(framework ORDER BY framework) AS frameworks,
           array_agg(check_id ORDER BY framework) AS check_ids,
           array_agg(title ORDER BY framework) AS titles,
           array_agg(reason ORDER BY framework) AS reasons,
           min(resource_type) AS resource_type
    FROM aws_policy_open_findings
    WHERE account_id = r.account_id AND resource_id = r.resource_id
      AND coalesce(control_logic, framework || ' ' || check_id) = r.problem {filters}
) v
ORDER BY r.severity_rank, r.age_days DESC, r.first_failing_date, r.account_id, r.problem, r.resource_id
