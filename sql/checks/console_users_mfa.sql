-- console_users_mfa · cis_v1.2.0 1.2 · cis_v1.3.0 1.10 · cis_v1.4.0 1.10 · cis_v1.5.0 1.10 · cis_v2.0.0 1.10 · cis_v3.0.0 1.10 · cis_v4.0.0 1.10 · cis_v5.0.0 1.9 · cis_v6.0.0 2.9 · severity high
-- MFA is enabled for every IAM user that has a console password.
-- Audit: credential report rows other than <root_account> with password_enabled = true
-- must have mfa_active = true. Users without a console password are not evaluated.
-- Reads: credential_report. Resource: the user's ARN.
{% from 'macros/check.sql' import check %}
{% call check('console_users_mfa', needs=['credential_report']) %}
SELECT c.framework, c.check_id, u.account_id, u.arn, 'iam_user',
       CASE WHEN u.mfa_active THEN 'pass' ELSE 'fail' END,
       CASE WHEN u.mfa_active
            THEN format('User %%s has a console password and an MFA device.', u.user_name)
            ELSE format('User %%s can sign in to the console with a password but has no MFA device.', u.user_name)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.credential_report u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id
WHERE NOT u.is_root AND u.password_enabled
{% endcall %}
