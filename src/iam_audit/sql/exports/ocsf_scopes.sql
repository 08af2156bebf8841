-- The framework controls each variant answered on one snapshot date, with that day's title and
-- severity: the small lookup the exports join to sql/exports/ocsf_findings.sql's rows.
SELECT variant_id, framework, check_id, title, severity
FROM aws_policy_scopes
WHERE snapshot_date = %(snapshot_date)s
ORDER BY variant_id, framework, check_id;
