-- root_mfa · catalogue: sql/catalogue/controls/root_mfa.yaml
-- The root user has MFA enabled.
-- Audit: GetAccountSummary AccountMFAEnabled = 1 passes; 0 fails.
-- From v5.0.0 (params.pass_without_password) the benchmark also passes a root user
-- without a password, so there is no console sign-in to protect. Its command-line
-- audit reads GetAccountSummary AccountPasswordPresent = 0; its console audit reads
-- the credential report's <root_account> password_enabled = false. Either passes.
-- DECISION: AccountPasswordPresent is the primary source: AWS documents root's
-- password_enabled as 'not_supported' (stored NULL), and only newer member accounts
-- without root credentials show false. password_enabled = false is still accepted.
-- DECISION: a missing summary row or AccountMFAEnabled value fails (MFA cannot be
-- shown), with a reason that says so.
-- DECISION: unknown never passes: a NULL AccountPasswordPresent (key absent from the
-- response) and a NULL or missing root password_enabled both leave the password
-- state unknown, and the account then needs MFA like before v5.0.0.
-- DECISION: needs are per logic, so credential_report is needed by every version,
-- not only by v5.0.0 and v6.0.0 that read it: one file keeps one audit for one
-- control. The cost: an account whose credential report could not be collected gets
-- 'error' for root MFA in every version, even where the account summary alone
-- would have answered.
-- DECISION: where the organisation's centralised root access is on (organization_features,
-- collected once per run), the no-password pass says root credentials are centrally
-- managed; the verdict never depends on it (a missing organisation data set changes nothing).
-- Reads: account_summary, credential_report. Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('root_mfa', needs=['account_summary', 'credential_report']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN s.account_mfa_enabled = 1 THEN 'pass'
            WHEN (c.params->>'pass_without_password')::boolean
                 AND (s.account_password_present = 0 OR u.password_enabled IS FALSE) THEN 'pass'
            ELSE 'fail' END,
       CASE WHEN s.account_mfa_enabled = 1
            THEN 'The root user has MFA enabled (AccountMFAEnabled = 1).'
            WHEN (c.params->>'pass_without_password')::boolean
                 AND (s.account_password_present = 0 OR u.password_enabled IS FALSE)
            THEN format('The root user has no password (%%s)%%s, so there is no root sign-in for MFA to protect.',
                        concat_ws(' and ',
                                  CASE WHEN s.account_password_present = 0 THEN 'AccountPasswordPresent = 0' END,
                                  CASE WHEN u.password_enabled IS FALSE THEN 'credential report password_enabled = false' END),
                        CASE WHEN o.central THEN ': root credentials are centrally managed by the organisation (RootCredentialsManagement enabled)' ELSE '' END)
            WHEN s.account_mfa_enabled IS NULL
            THEN 'The account summary has no AccountMFAEnabled value, so MFA on the root user cannot be confirmed; check the root user''s security credentials.'
            WHEN (c.params->>'pass_without_password')::boolean
            THEN 'The root user has no MFA device (AccountMFAEnabled = 0) and its password is not shown removed (AccountPasswordPresent is not 0 and the credential report''s password_enabled is not false); assign a hardware, passkey or virtual MFA device, or remove the root credentials with centralized root access.'
            ELSE 'The root user has no MFA device (AccountMFAEnabled = 0); sign in as root and assign a hardware, passkey or virtual MFA device.'
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN iam_stage.account_summary s
  ON s.snapshot_date = %(snapshot_date)s AND s.account_id = r.account_id
LEFT JOIN iam_stage.credential_report u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id AND u.is_root
LEFT JOIN (
    -- the organisation's centralised root access (organisation data set, collected once per run):
    -- named in the reason only; the verdict reads the account's own data
    SELECT bool_or(feature = 'RootCredentialsManagement') AS central
    FROM iam_stage.organization_features
    WHERE snapshot_date = %(snapshot_date)s
) AS o ON true
{% endcall %}
