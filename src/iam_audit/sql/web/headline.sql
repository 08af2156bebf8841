-- the headline of the latest run's date (sql/views/080_aws_policy_findings.sql), in the chosen framework
-- (scope) and for the chosen account and severity ({filters}: HEADLINE_FILTERS)
SELECT count(*) FILTER (WHERE status = 'pass'), count(*) FILTER (WHERE status = 'fail'),
       count(*) FILTER (WHERE status = 'error'), count(*) FILTER (WHERE status = 'muted')
FROM aws_policy_findings
WHERE snapshot_date = %(day)s AND scope = %(scope)s {filters}
