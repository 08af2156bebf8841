-- name: account_not_audited
-- description: >-
--   An account could not be audited: its extraction failed on this snapshot (a data
--   set is missing, its controls are 'error'), or its newest evaluated snapshot is
--   more than 2 days old.
-- delivery: immediate
-- recipients: [owner]
SELECT concat_ws(' ', 'extraction_failed', s.account_id, s.snapshot_date) AS alert_key,
       s.account_id, 'high' AS severity, 'Account extraction failed' AS title,
       'account ' || s.account_id AS resource_id,
       'Data sets not collected: ' || string_agg(format('%%s (%%s)', s.dataset, coalesce(s.error_code, 'error')),
                                                 ', ' ORDER BY s.dataset) AS reason
FROM iam_stage.extraction_status s
WHERE s.snapshot_date = %(snapshot_date)s AND s.status = 'error'
GROUP BY s.account_id, s.snapshot_date
UNION ALL
SELECT concat_ws(' ', 'stale', f.account_id, coalesce(f.latest_snapshot_date::text, 'never')),
       f.account_id, 'high', 'Account not audited recently',
       'account ' || f.account_id,
       CASE WHEN f.latest_snapshot_date IS NULL THEN 'The account has never been evaluated.'
            ELSE format('The newest evaluated snapshot is from %%s, %%s days before %%s.', f.latest_snapshot_date,
                        %(snapshot_date)s::date - f.latest_snapshot_date, %(snapshot_date)s::date) END
FROM aws_policy_account_freshness f
WHERE f.latest_snapshot_date IS NULL OR %(snapshot_date)s::date - f.latest_snapshot_date > 2
