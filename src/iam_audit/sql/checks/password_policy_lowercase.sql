-- password_policy_lowercase · catalogue: sql/catalogue/controls/password_policy_lowercase.yaml
-- The account password policy requires at least one lowercase letter.
-- Audit: GetAccountPasswordPolicy RequireLowercaseCharacters = true.
-- One verdict per account. An account without a password policy (has_policy = false:
-- GetAccountPasswordPolicy said NoSuchEntity) fails, and so does a ready account with
-- no password_policy row at all (treated as no policy).
-- Reads: password_policy. Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('password_policy_lowercase', needs=['password_policy']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN coalesce(p.has_policy, false)
                 AND coalesce(p.require_lowercase_characters, false)
            THEN 'pass' ELSE 'fail' END,
       CASE WHEN NOT coalesce(p.has_policy, false)
            THEN format('The account has no IAM password policy (%%s), so passwords need not contain a lowercase letter; create one with RequireLowercaseCharacters set.',
                        CASE WHEN p.account_id IS NULL THEN 'no password policy was recorded for the account'
                             ELSE 'GetAccountPasswordPolicy returned NoSuchEntity' END)
            WHEN coalesce(p.require_lowercase_characters, false)
            THEN 'The account password policy requires at least one lowercase letter (RequireLowercaseCharacters = true).'
            ELSE 'The account password policy does not require a lowercase letter (RequireLowercaseCharacters = false); '
                 || 'set RequireLowercaseCharacters.'
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN iam_stage.password_policy p
  ON p.snapshot_date = %(snapshot_date)s AND p.account_id = r.account_id
{% endcall %}
