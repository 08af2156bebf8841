-- hygiene_old_access_keys · catalogue: sql/catalogue/controls/hygiene_old_access_keys.yaml
-- No active access key is older than 365 days.
-- Audit: per active key of iam_stage.access_keys (ListAccessKeys, one row per key id):
-- fail when as_of - create_date > 365 days; a key exactly 365 days old passes.
-- Inactive keys get no verdict (they authenticate nothing; CIS credentials_unused and
-- access_keys_rotated cover the key lifecycle). Root keys are reported by root_access_keys.
-- credential_report is in needs as for access_keys_rotated: the loader lists keys
-- only for the users the report shows with keys, so access_keys is complete only
-- when the report was collected.
-- DECISION: an active key without a create_date fails (its age cannot be shown to be
-- within the limit) with a reason saying so.
-- Reasons name the creation date and the date the key reaches 365 days, never a count
-- of days, so the text is the same from one snapshot to the next until the verdict changes.
-- Reads: access_keys (credential_report). Resource: the access key id.
{% from 'macros/check.sql' import check %}
{% call check('hygiene_old_access_keys', needs=['credential_report', 'access_keys']) %}
SELECT c.framework, c.check_id, k.account_id, k.access_key_id, 'access_key',
       CASE WHEN k.create_date IS NOT NULL AND r.as_of - k.create_date <= interval '365 days'
            THEN 'pass' ELSE 'fail' END,
       CASE WHEN k.create_date IS NULL
            THEN format('Access key %%s of user %%s is active but its creation date is unknown, so it cannot be shown to be at most 365 days old.',
                        k.access_key_id, k.user_name)
            WHEN r.as_of - k.create_date <= interval '365 days'
            THEN format('Access key %%s of user %%s is active and was created on %%s, at most 365 days before the snapshot; replace it by %%s.',
                        k.access_key_id, k.user_name, to_char(k.create_date AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                        to_char((k.create_date + interval '365 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
            ELSE format('Access key %%s of user %%s is active and was created on %%s, more than 365 days before the snapshot (due for replacement by %%s); replace it (or move the workload to a role) and delete it.',
                        k.access_key_id, k.user_name, to_char(k.create_date AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                        to_char((k.create_date + interval '365 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.access_keys k
  ON k.snapshot_date = %(snapshot_date)s AND k.account_id = r.account_id
WHERE lower(k.status) = 'active'
{% endcall %}
