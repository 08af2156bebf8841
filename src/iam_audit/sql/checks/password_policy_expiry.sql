-- password_policy_expiry · catalogue: sql/catalogue/controls/password_policy_expiry.yaml
-- Passwords expire within params.max_age_days (90) days or less.
-- Audit: GetAccountPasswordPolicy ExpirePasswords = true and MaxPasswordAge between 1 and
-- params.max_age_days inclusive.
-- One verdict per account. An account without a password policy (has_policy = false:
-- GetAccountPasswordPolicy said NoSuchEntity) fails, and so does a ready account with
-- no password_policy row at all (treated as no policy).
-- DECISION: MaxPasswordAge = 90 passes ("90 days or less"), 91 fails. Published audit
-- queries that test MaxPasswordAge < 90 are wrong: they fail the benchmark's own value.
-- Reads: password_policy. Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('password_policy_expiry', needs=['password_policy']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN coalesce(p.has_policy, false)
                 AND coalesce(p.expire_passwords AND p.max_password_age BETWEEN 1 AND (c.params->>'max_age_days')::int, false)
            THEN 'pass' ELSE 'fail' END,
       CASE WHEN NOT coalesce(p.has_policy, false)
            THEN format('The account has no IAM password policy (%%s), so passwords never expire; create one with MaxPasswordAge between 1 and %%s.',
                        CASE WHEN p.account_id IS NULL THEN 'no password policy was recorded for the account'
                             ELSE 'GetAccountPasswordPolicy returned NoSuchEntity' END,
                        c.params->>'max_age_days')
            WHEN coalesce(p.expire_passwords AND p.max_password_age BETWEEN 1 AND (c.params->>'max_age_days')::int, false)
            THEN format('Passwords expire after %%s days (limit %%s).', p.max_password_age, c.params->>'max_age_days')
            WHEN NOT coalesce(p.expire_passwords, false) OR p.max_password_age IS NULL
            THEN format('The account password policy does not expire passwords (ExpirePasswords = false); set MaxPasswordAge between 1 and %%s.',
                        c.params->>'max_age_days')
            ELSE format('Passwords expire only after %%s days (MaxPasswordAge), outside 1 to %%s; set MaxPasswordAge between 1 and %%s.',
                        p.max_password_age, c.params->>'max_age_days', c.params->>'max_age_days')
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN iam_stage.password_policy p
  ON p.snapshot_date = %(snapshot_date)s AND p.account_id = r.account_id
{% endcall %}
