-- password_policy_min_length · catalogue: sql/catalogue/controls/password_policy_min_length.yaml
-- The account password policy requires passwords of params.min_length (14) characters or more.
-- Audit: GetAccountPasswordPolicy MinimumPasswordLength >= params.min_length (14 passes, 13 fails).
-- One verdict per account. An account without a password policy (has_policy = false:
-- GetAccountPasswordPolicy said NoSuchEntity) fails, and so does a ready account with
-- no password_policy row at all (treated as no policy).
-- Reads: password_policy. Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('password_policy_min_length', needs=['password_policy']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN coalesce(p.has_policy, false)
                 AND coalesce(p.minimum_password_length >= (c.params->>'min_length')::int, false)
            THEN 'pass' ELSE 'fail' END,
       CASE WHEN NOT coalesce(p.has_policy, false)
            THEN format('The account has no IAM password policy (%%s), so no minimum length of %%s characters is enforced; create one with MinimumPasswordLength %%s or more.',
                        CASE WHEN p.account_id IS NULL THEN 'no password policy was recorded for the account'
                             ELSE 'GetAccountPasswordPolicy returned NoSuchEntity' END,
                        c.params->>'min_length', c.params->>'min_length')
            WHEN coalesce(p.minimum_password_length >= (c.params->>'min_length')::int, false)
            THEN format('The account password policy requires at least %%s characters (minimum %%s).',
                        p.minimum_password_length, c.params->>'min_length')
            ELSE format('The account password policy requires only %%s characters (MinimumPasswordLength); set it to %%s or more.',
                        coalesce(p.minimum_password_length::text, 'an unset number of'), c.params->>'min_length')
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN iam_stage.password_policy p
  ON p.snapshot_date = %(snapshot_date)s AND p.account_id = r.account_id
{% endcall %}
