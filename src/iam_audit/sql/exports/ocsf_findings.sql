-- The findings of one snapshot date for the exports (iam_audit.export): one row per (control logic,
-- account, resource) with the verdict of each variant of the logic that answered it that day.
--
-- A verdict is stored once per control logic and param set (a variant); frameworks sharing a
-- variant share its verdict, frameworks with other params (e.g. 45 or 90 days unused) may differ.
-- Rows carry variants, not frameworks: the frameworks and numbers each variant answered that day are
-- few (sql/exports/ocsf_scopes.sql) and are joined in by the reader, which keeps each row small
-- (one framework copy per row made the output four times larger and its serialisation the cost).
-- Built on the history tables like aws_policy_results (sql/views/005): the evaluations of the date,
-- the intervals covering it; an evaluation whose data was incomplete gives one account-level 'error'.
--   first_seen     earliest date the resource has any verdict of the variant in the account
--   failing_since  start of the unbroken failing streak (aws_policy_verdicts.failing_since)
--   muted          for a 'fail': [framework, check_id, exception id, reason, expires_on] of each
--                  framework control of the variant whose fail an exception mutes on that date
-- Rows come ordered by the finding's key, so the export is byte-identical for the same history.
WITH day AS (
    SELECT e.variant_id, e.account_id, e.run_id, e.evaluated_at, e.error_reason,
           coalesce(nullif(e.control_logic, ''), 'variant/' || e.variant_id) AS control_logic
    FROM aws_policy_evaluations e
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
       jsonb_agg(jsonb_build_array(v.variant_id, v.status, v.reason, m.muted) ORDER BY v.variant_id) AS variants
FROM verdicts v
LEFT JOIN iam_stage.accounts a ON a.snapshot_date = %(snapshot_date)s AND a.account_id = v.account_id
-- (the exception lookup runs only for fails, and only when exceptions exist at all)
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_array(s.framework, s.check_id, x.exception_id, x.exception_reason,
                                       x.exception_expires_on)) AS muted
    FROM aws_policy_scopes s
    CROSS JOIN LATERAL aws_policy_matching_exception(%(snapshot_date)s, s.framework, s.check_id, v.account_id,
                                                     v.resource_id, v.status) x
    WHERE v.status = 'fail' AND EXISTS (SELECT 1 FROM aws_policy_exceptions)
      AND s.snapshot_date = %(snapshot_date)s AND s.variant_id = v.variant_id
) m ON true
GROUP BY v.control_logic, v.account_id, v.resource_id
ORDER BY v.control_logic, v.account_id, v.resource_id;
