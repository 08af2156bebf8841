-- The findings of one snapshot date for the OCSF export (iam_audit.export.ocsf): one row per
-- (control logic, account, resource) with every framework control that answered it that day.
--
-- A verdict is stored once per control logic and param set (a variant); frameworks sharing a
-- variant share its verdict, frameworks with other params (e.g. 45 or 90 days unused) may differ,
-- so each framework's status and reason travel in `checks`. Built on the history tables like
-- aws_policy_results (sql/views/005): the evaluations of the date, the intervals covering it and the
-- scopes of the date; an evaluation whose data was incomplete gives one account-level 'error'.
--   first_seen     earliest date the resource has any verdict of the logic in the account
--   failing_since  start of the unbroken failing streak (aws_policy_verdicts.failing_since)
--   exception_*    the exception muting a 'fail' on that date (aws_policy_matching_exception)
-- Rows come ordered by the finding's key, so the export is byte-identical for the same history.
WITH day AS (
    SELECT e.variant_id, e.account_id, e.run_id, e.evaluated_at, e.error_reason,
           coalesce(e.control_logic, s.framework || '/' || s.check_id) AS control_logic,
           s.framework, s.check_id, s.title, s.severity
    FROM aws_policy_evaluations e
    JOIN aws_policy_scopes s ON s.snapshot_date = e.snapshot_date AND s.variant_id = e.variant_id
    WHERE e.snapshot_date = %(snapshot_date)s
), verdicts AS (
    SELECT d.*, i.resource_id, i.resource_type, i.status, i.reason, i.failing_since,
           (SELECT min(f.valid_from) FROM aws_policy_verdicts f
            WHERE f.variant_id = i.variant_id AND f.account_id = i.account_id
              AND f.resource_id = i.resource_id) AS first_seen
    FROM day d
    JOIN aws_policy_verdicts i
      ON i.variant_id = d.variant_id AND i.account_id = d.account_id
     AND i.valid_from <= %(snapshot_date)s AND i.valid_to >= %(snapshot_date)s
    WHERE d.error_reason IS NULL
    UNION ALL
    SELECT d.*, d.account_id, 'account', 'error', 'Could not evaluate: ' || d.error_reason, NULL::date,
           NULL::date
    FROM day d
    WHERE d.error_reason IS NOT NULL
)
SELECT v.control_logic, v.account_id, v.resource_id,
       max(v.resource_type) AS resource_type,
       max(a.account_name) AS account_name,
       max(v.run_id) AS run_id,
       max(v.evaluated_at) AS evaluated_at,
       min(v.first_seen) AS first_seen,
       min(v.failing_since) AS failing_since,
       jsonb_agg(jsonb_build_object(
           'framework', v.framework, 'check_id', v.check_id, 'title', v.title, 'severity', v.severity,
           'status', v.status, 'reason', v.reason,
           'exception_id', x.exception_id, 'exception_reason', x.exception_reason,
           'exception_expires_on', x.exception_expires_on)
           ORDER BY v.framework, v.check_id) AS checks
FROM verdicts v
LEFT JOIN iam_stage.accounts a ON a.snapshot_date = %(snapshot_date)s AND a.account_id = v.account_id
-- (the exception lookup runs only for fails, and only when exceptions exist at all)
LEFT JOIN LATERAL (
    SELECT m.exception_id, m.exception_reason, m.exception_expires_on
    FROM aws_policy_matching_exception(%(snapshot_date)s, v.framework, v.check_id, v.account_id,
                                       v.resource_id, v.status) m
    WHERE v.status = 'fail' AND EXISTS (SELECT 1 FROM aws_policy_exceptions)
) x ON true
GROUP BY v.control_logic, v.account_id, v.resource_id
ORDER BY v.control_logic, v.account_id, v.resource_id;
