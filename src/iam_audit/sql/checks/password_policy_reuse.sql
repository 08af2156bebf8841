-- password_policy_reuse · catalogue: sql/catalogue/controls/password_policy_reuse.yaml
-- The account password policy remembers params.min_remembered (24) passwords, so none of
-- them can be reused.
-- Audit: GetAccountPasswordPolicy PasswordReusePrevention >= params.min_remembered (24).
-- One verdict per account. An account without a password policy (has_policy = false:
-- GetAccountPasswordPolicy said NoSuchEntity) fails, and so does a ready account with
-- no password_policy row at all (treated as no policy).
-- DECISION: 24 (the IAM maximum) passes. Published audit queries that test
-- PasswordReusePrevention > 24 are wrong: no value can ever satisfy them.
-- Reads: password_policy. Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('password_policy_reuse', needs=['password_policy']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN coalesce(p.has_policy, false)
                 AND coalesce(p.password_reuse_prevention >= (c.params->>'min_remembered')::int, false)
            THEN 'pass' ELSE 'fail' END,
       CASE WHEN NOT coalesce(p.has_policy, false)
            THEN format('The account has no IAM password policy (%%s), so passwords can be reused; create one with PasswordReusePrevention %%s.',
                        CASE WHEN p.account_id IS NULL THEN 'no password policy was recorded for the account'
                             ELSE 'GetAccountPasswordPolicy returned NoSuchEntity' END,
                        c.params->>'min_remembered')
            WHEN coalesce(p.password_reuse_prevention >= (c.params->>'min_remembered')::int, false)
            THEN format('The account password policy remembers %%s previous passwords (required: %%s).',
                        p.password_reuse_prevention, c.params->>'min_remembered')
            WHEN p.password_reuse_prevention IS NULL
            THEN format('The account password policy does not prevent password reuse (PasswordReusePrevention is not set); set it to %%s.',
                        c.params->>'min_remembered')
            ELSE format('The account password policy remembers only %%s previous passwords (PasswordReusePrevention); set it to %%s.',
                        p.password_reuse_prevention, c.params->>'min_remembered')
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN iam_stage.password_policy p
  ON p.snapshot_date = %(snapshot_date)s AND p.account_id = r.account_id
{% endcall %}
