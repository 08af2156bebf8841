-- root_mfa · cis_v1.2.0 1.13 · cis_v3.0.0 1.5 · severity critical
-- The root user has MFA enabled.
-- Audit: GetAccountSummary AccountMFAEnabled = 1 passes; 0 fails.
-- DECISION: a missing summary row or AccountMFAEnabled value fails (MFA cannot be
-- shown), with a reason that says so.
-- Reads: account_summary. Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('root_mfa', needs=['account_summary']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN s.account_mfa_enabled = 1 THEN 'pass' ELSE 'fail' END,
       CASE WHEN s.account_mfa_enabled = 1
            THEN 'The root user has MFA enabled (AccountMFAEnabled = 1).'
            WHEN s.account_mfa_enabled IS NULL
            THEN 'The account summary has no AccountMFAEnabled value, so MFA on the root user cannot be confirmed; check the root user''s security credentials.'
            ELSE 'The root user has no MFA device (AccountMFAEnabled = 0); sign in as root and assign a hardware, passkey or virtual MFA device.'
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN iam_stage.account_summary s
  ON s.snapshot_date = %(snapshot_date)s AND s.account_id = r.account_id
{% endcall %}
