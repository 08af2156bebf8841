-- The headline unit, defined here once: a FINDING is one control logic x account x resource,
-- counted once at its worst verdict over the frameworks in scope ('all' frameworks, or one
-- framework), effective status ranked fail > error > muted > pass: a finding is failing (open)
-- when it fails without exception in any framework in scope; else error when one of them could
-- not evaluate it; else muted when its fails are all accepted by exceptions; else passing.
-- The pass rate of findings is passing / (passing + failing); errors and muted findings are
-- counted beside it (aws_policy_headline). src/iam_audit/reporting/headline.py holds the same words
-- for the summary, the report, the Compliance page and the Superset dashboard.
-- An evaluation without control_logic (a database upgraded from the earlier design) makes its
-- own finding per framework control (framework || ' ' || check_id).
CREATE OR REPLACE VIEW aws_policy_finding_rows AS
SELECT snapshot_date, framework, coalesce(control_logic, framework || ' ' || check_id) AS control_logic,
       account_id, resource_id, resource_type,
       CASE severity WHEN 'critical' THEN 1 WHEN 'high' THEN 2 WHEN 'medium' THEN 3 ELSE 4 END AS severity_rank,
       CASE effective_status WHEN 'fail' THEN 4 WHEN 'error' THEN 3 WHEN 'muted' THEN 2 ELSE 1 END AS status_rank
FROM aws_policy_results_effective;

-- One row per snapshot date, scope ('all' or a framework) and finding. Filter on snapshot_date
-- and scope (both are pushed down to the verdicts of that date).
CREATE OR REPLACE VIEW aws_policy_findings AS
SELECT snapshot_date, 'all'::text AS scope, control_logic, account_id, resource_id,
       min(resource_type) AS resource_type,
       (ARRAY['critical', 'high', 'medium', 'low'])[min(severity_rank)] AS severity,
       (ARRAY['pass', 'muted', 'error', 'fail'])[max(status_rank)] AS status
FROM aws_policy_finding_rows
GROUP BY snapshot_date, control_logic, account_id, resource_id
UNION ALL
SELECT snapshot_date, framework, control_logic, account_id, resource_id,
       min(resource_type),
       (ARRAY['critical', 'high', 'medium', 'low'])[min(severity_rank)],
       (ARRAY['pass', 'muted', 'error', 'fail'])[max(status_rank)]
FROM aws_policy_finding_rows
GROUP BY snapshot_date, framework, control_logic, account_id, resource_id;

-- The headline per snapshot date and scope: findings by status and the pass rate of findings
-- (a fraction 0..1, 4 decimals; NULL when no finding passes or fails).
CREATE OR REPLACE VIEW aws_policy_headline AS
SELECT snapshot_date, scope, count(*) AS findings,
       count(*) FILTER (WHERE status = 'pass') AS pass_count,
       count(*) FILTER (WHERE status = 'fail') AS fail_count,
       count(*) FILTER (WHERE status = 'error') AS error_count,
       count(*) FILTER (WHERE status = 'muted') AS muted_count,
       round((count(*) FILTER (WHERE status = 'pass'))::numeric
             / nullif(count(*) FILTER (WHERE status IN ('pass', 'fail')), 0), 4) AS pass_rate
FROM aws_policy_findings
GROUP BY snapshot_date, scope;
