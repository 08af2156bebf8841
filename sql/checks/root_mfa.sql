-- root_mfa · cis_v1.2.0 1.13 · cis_v1.3.0 1.5 · cis_v1.4.0 1.5 · cis_v1.5.0 1.5 · cis_v2.0.0 1.5 · cis_v3.0.0 1.5 · cis_v4.0.0 1.5 · cis_v5.0.0 1.4 · cis_v6.0.0 2.4 · severity critical
-- The root user has MFA enabled.
-- Audit: GetAccountSummary AccountMFAEnabled = 1 passes; 0 fails.
-- From v5.0.0 (params.pass_without_password) the benchmark also passes a root user
-- without a password: the credential report's <root_account> row has
-- password_enabled = false (root credentials removed, e.g. by centralized root access
-- in AWS Organizations), so there is no console sign-in to protect.
-- DECISION: a missing summary row or AccountMFAEnabled value fails (MFA cannot be
-- shown), with a reason that says so.
-- DECISION: only an explicit password_enabled = false passes without MFA. NULL (AWS
-- reports 'not_supported' for root unless the password was removed) or a missing
-- root row means the password state is unknown, and unknown never passes.
-- DECISION: needs are per logic, so credential_report is needed by every version,
-- not only by v5.0.0 and v6.0.0 that read it: one file keeps one audit for one
-- control. The cost: an account whose credential report could not be collected gets
-- 'error' for root MFA in every version, even where the account summary alone
-- would have answered.
-- Reads: account_summary, credential_report. Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('root_mfa', needs=['account_summary', 'credential_report']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN s.account_mfa_enabled = 1 THEN 'pass'
            WHEN coalesce((c.params->>'pass_without_password')::boolean, false)
                 AND u.password_enabled IS FALSE THEN 'pass'
            ELSE 'fail' END,
       CASE WHEN s.account_mfa_enabled = 1
            THEN 'The root user has MFA enabled (AccountMFAEnabled = 1).'
            WHEN coalesce((c.params->>'pass_without_password')::boolean, false)
                 AND u.password_enabled IS FALSE
            THEN 'The root user has no password (credential report password_enabled = false, root credentials removed), so there is no root sign-in for MFA to protect.'
            WHEN s.account_mfa_enabled IS NULL
            THEN 'The account summary has no AccountMFAEnabled value, so MFA on the root user cannot be confirmed; check the root user''s security credentials.'
            WHEN coalesce((c.params->>'pass_without_password')::boolean, false)
            THEN 'The root user has no MFA device (AccountMFAEnabled = 0) and the credential report does not show its password removed; assign a hardware, passkey or virtual MFA device, or remove the root credentials with centralized root access.'
            ELSE 'The root user has no MFA device (AccountMFAEnabled = 0); sign in as root and assign a hardware, passkey or virtual MFA device.'
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN iam_stage.account_summary s
  ON s.snapshot_date = %(snapshot_date)s AND s.account_id = r.account_id
LEFT JOIN iam_stage.credential_report u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id AND u.is_root
{% endcall %}
