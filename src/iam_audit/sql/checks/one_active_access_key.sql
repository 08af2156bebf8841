-- one_active_access_key · catalogue: sql/catalogue/controls/one_active_access_key.yaml
-- No IAM user has more than one active access key.
-- Audit: credential report rows other than <root_account> with at least one active
-- access key; access_key_1_active and access_key_2_active both true fails. Users
-- whose two keys are both known inactive (or absent) are not evaluated.
-- DECISION: unknown never passes: a user with a NULL access_key_N_active flag is
-- evaluated and fails with a reason naming the unknown slot. Only exactly one TRUE
-- and one FALSE passes.
-- Reads: credential_report. Resource: the user's ARN.
{% from 'macros/check.sql' import check %}
{% call check('one_active_access_key', needs=['credential_report']) %}
SELECT c.framework, c.check_id, u.account_id, u.arn, 'iam_user',
       CASE WHEN (u.access_key_1_active IS TRUE AND u.access_key_2_active IS FALSE)
              OR (u.access_key_1_active IS FALSE AND u.access_key_2_active IS TRUE)
            THEN 'pass' ELSE 'fail' END,
       CASE WHEN u.access_key_1_active IS TRUE AND u.access_key_2_active IS TRUE
            THEN format('User %%s has 2 active access keys (slot 1 rotated %%s, slot 2 rotated %%s); deactivate and delete the one no longer in use.',
                        u.user_name,
                        coalesce(to_char(u.access_key_1_last_rotated AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 'unknown'),
                        coalesce(to_char(u.access_key_2_last_rotated AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 'unknown'))
            WHEN u.access_key_1_active IS NULL OR u.access_key_2_active IS NULL
            THEN format('The credential report does not say whether access key %%s of user %%s is active, so a second active key cannot be ruled out.',
                        concat_ws(' and ', CASE WHEN u.access_key_1_active IS NULL THEN '1' END,
                                  CASE WHEN u.access_key_2_active IS NULL THEN '2' END), u.user_name)
            ELSE format('User %%s has exactly one active access key (slot %%s).',
                        u.user_name, CASE WHEN u.access_key_1_active THEN 1 ELSE 2 END)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.credential_report u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id
WHERE NOT u.is_root
  AND (u.access_key_1_active IS NOT FALSE OR u.access_key_2_active IS NOT FALSE)
{% endcall %}
