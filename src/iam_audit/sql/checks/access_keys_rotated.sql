-- access_keys_rotated · catalogue: sql/catalogue/controls/access_keys_rotated.yaml
-- Every active access key was created (rotated) at most params.max_key_age_days (90)
-- days before the snapshot.
-- Audit: per active key of iam_stage.access_keys (ListAccessKeys, one row per key id):
-- fail when as_of - create_date > N days; a key exactly N days old passes.
-- Inactive keys are not evaluated (no verdict). Root keys are not in access_keys
-- (ListAccessKeys covers IAM users only): root_access_keys reports any root key.
-- credential_report is in needs per the catalogue: the loader joins each key's last
-- use from the report into access_keys. Ages come from access_keys.create_date (the
-- report's access_key_N_last_rotated is the same instant) so the verdict names the key id.
-- DECISION: an active key without a create_date fails (its age cannot be shown to be
-- within the limit) with a reason saying so.
-- Reasons name the creation date, the limit and the date the key is (was) due for
-- rotation (create_date + N days), never a count of days: the text then stays the
-- same from one snapshot to the next until the verdict changes (docs/adding-a-control.md).
-- Reads: access_keys (credential_report). Resource: the access key id.
{% from 'macros/check.sql' import check %}
{% call check('access_keys_rotated', needs=['credential_report', 'access_keys']) %}
SELECT c.framework, c.check_id, k.account_id, k.access_key_id, 'access_key',
       CASE WHEN k.create_date IS NOT NULL
                 AND r.as_of - k.create_date <= make_interval(days => (c.params->>'max_key_age_days')::int)
            THEN 'pass' ELSE 'fail' END,
       CASE WHEN k.create_date IS NULL
            THEN format('Access key %%s of user %%s is active but its creation date is unknown; rotate it to be sure it is at most %%s days old.',
                        k.access_key_id, k.user_name, c.params->>'max_key_age_days')
            WHEN r.as_of - k.create_date <= make_interval(days => (c.params->>'max_key_age_days')::int)
            THEN format('Access key %%s of user %%s is active and was created on %%s, at most %%s days before the snapshot; rotate it by %%s.',
                        k.access_key_id, k.user_name, to_char(k.create_date AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                        c.params->>'max_key_age_days',
                        to_char((k.create_date + make_interval(days => (c.params->>'max_key_age_days')::int)) AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
            ELSE format('Access key %%s of user %%s is active and was created on %%s, more than %%s days before the snapshot (rotation was due by %%s); create a new key, move the workload to it and delete this one.',
                        k.access_key_id, k.user_name, to_char(k.create_date AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                        c.params->>'max_key_age_days',
                        to_char((k.create_date + make_interval(days => (c.params->>'max_key_age_days')::int)) AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.access_keys k
  ON k.snapshot_date = %(snapshot_date)s AND k.account_id = r.account_id
WHERE lower(k.status) = 'active'
{% endcall %}
