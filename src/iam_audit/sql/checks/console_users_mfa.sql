-- console_users_mfa · catalogue: sql/catalogue/controls/console_users_mfa.yaml
-- MFA is enabled for every IAM user that has a console password.
-- Audit: credential report rows other than <root_account> with password_enabled = true
-- must have mfa_active = true. Users without a console password are not evaluated.
-- DECISION: unknown never passes: a user whose password_enabled is NULL is evaluated
-- (a console password cannot be ruled out) and, like a NULL mfa_active, fails with a
-- reason that says the value is unknown.
-- Reads: credential_report. Resource: the user's ARN.
{% from 'macros/check.sql' import check %}
{% call check('console_users_mfa', needs=['credential_report']) %}
SELECT c.framework, c.check_id, u.account_id, u.arn, 'iam_user',
       CASE WHEN u.password_enabled IS TRUE AND u.mfa_active IS TRUE THEN 'pass' ELSE 'fail' END,
       CASE WHEN u.password_enabled IS NULL
            THEN format('The credential report does not say whether user %%s has a console password (password_enabled unknown), so MFA cannot be confirmed where it is needed.', u.user_name)
            WHEN u.mfa_active IS TRUE
            THEN format('User %%s has a console password and an MFA device.', u.user_name)
            WHEN u.mfa_active IS NULL
            THEN format('User %%s can sign in to the console with a password and the credential report does not say whether it has an MFA device (mfa_active unknown).', u.user_name)
            ELSE format('User %%s can sign in to the console with a password but has no MFA device.', u.user_name)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.credential_report u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id
WHERE NOT u.is_root AND u.password_enabled IS NOT FALSE
{% endcall %}
