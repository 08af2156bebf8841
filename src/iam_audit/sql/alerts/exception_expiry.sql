-- name: exception_expiry
-- description: >-
--   An exception (aws_policy_exceptions) expires within 14 days, or has expired and
--   its findings count as failing again: once when it enters the 14 days, once when
--   it has expired.
-- delivery: digest
-- recipients: [owner]
SELECT concat_ws(' ', 'exception', e.id, CASE WHEN e.expires_on < %(snapshot_date)s THEN 'expired' ELSE 'expiring' END)
           AS alert_key,
       e.account_id, 'medium' AS severity,
       CASE WHEN e.expires_on < %(snapshot_date)s THEN 'Exception expired' ELSE 'Exception expires soon' END AS title,
       coalesce(e.resource_pattern, '(every resource)') AS resource_id,
       format('Exception %%s (%%s; scope: %%s) expires on %%s; created by %%s.', e.id, e.reason,
              concat_ws(', ', 'framework ' || e.framework, 'control ' || e.check_id,
                        'account ' || e.account_id, 'resources ' || e.resource_pattern,
                        CASE WHEN e.all_scope THEN 'everything' END),
              e.expires_on, e.created_by) AS reason,
       e.expires_on
FROM aws_policy_exceptions e
WHERE e.expires_on <= %(snapshot_date)s::date + 14
