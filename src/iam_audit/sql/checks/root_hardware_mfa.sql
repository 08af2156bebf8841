-- root_hardware_mfa · catalogue: sql/catalogue/controls/root_hardware_mfa.yaml
-- The root user's MFA is a hardware device, not a virtual one.
-- Audit: GetAccountSummary AccountMFAEnabled = 1, and ListVirtualMFADevices has no
-- device for root (SerialNumber ending ':mfa/root-account-mfa-device' or User.Arn
-- ending ':root').
-- From v5.0.0 (params.pass_without_password) a root user without a password passes:
-- the benchmark calls hardware MFA "neither possible nor necessary" then. As in
-- root_mfa, GetAccountSummary AccountPasswordPresent = 0 or the credential report's
-- <root_account> password_enabled = false shows it; NULL (unknown) never does.
-- DECISION: a root virtual device counts whether its serial or its user ARN identifies
-- root (either is enough to fail). A missing summary row fails like "no MFA".
-- DECISION: credential_report is needed by every version (needs are per logic), as in
-- root_mfa: without it, every version gets 'error' rather than a verdict.
-- DECISION: where the organisation's centralised root access is on (organization_features,
-- collected once per run), the no-password pass says root credentials are centrally
-- managed; the verdict never depends on it (a missing organisation data set changes nothing).
-- Reads: account_summary, virtual_mfa_devices, credential_report. Resource: the
-- 12-digit account id.
{% from 'macros/check.sql' import check %}
{% call check('root_hardware_mfa', needs=['account_summary', 'virtual_mfa_devices', 'credential_report']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN s.account_mfa_enabled = 1 AND v.serials IS NULL THEN 'pass'
            WHEN (c.params->>'pass_without_password')::boolean
                 AND (s.account_password_present = 0 OR u.password_enabled IS FALSE) THEN 'pass'
            ELSE 'fail' END,
       CASE WHEN s.account_mfa_enabled = 1 AND v.serials IS NULL
            THEN 'The root user has MFA enabled and no virtual MFA device, so it is a hardware device.'
            WHEN (c.params->>'pass_without_password')::boolean
                 AND (s.account_password_present = 0 OR u.password_enabled IS FALSE)
            THEN format('The root user has no password (%%s)%%s, so a hardware MFA device is neither possible nor necessary.',
                        concat_ws(' and ',
                                  CASE WHEN s.account_password_present = 0 THEN 'AccountPasswordPresent = 0' END,
                                  CASE WHEN u.password_enabled IS FALSE THEN 'credential report password_enabled = false' END),
                        CASE WHEN o.central THEN ': root credentials are centrally managed by the organisation (RootCredentialsManagement enabled)' ELSE '' END)
            WHEN s.account_mfa_enabled IS DISTINCT FROM 1
            THEN 'The root user has no MFA at all (AccountMFAEnabled is not 1); sign in as root and assign a hardware MFA device.'
            ELSE format('The root user''s MFA is virtual (%%s), not hardware; replace it with a hardware MFA device.', v.serials)
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN iam_stage.account_summary s
  ON s.snapshot_date = %(snapshot_date)s AND s.account_id = r.account_id
LEFT JOIN iam_stage.credential_report u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id AND u.is_root
LEFT JOIN (
    SELECT account_id, string_agg(serial_number, ', ' ORDER BY serial_number) AS serials
    FROM iam_stage.virtual_mfa_devices
    WHERE snapshot_date = %(snapshot_date)s
      AND (serial_number LIKE '%%:mfa/root-account-mfa-device' OR user_arn LIKE '%%:root')
    GROUP BY account_id
) AS v ON v.account_id = r.account_id
LEFT JOIN (
    -- the organisation's centralised root access (organisation data set, collected once per run):
    -- named in the reason only; the verdict reads the account's own data
    SELECT bool_or(feature = 'RootCredentialsManagement') AS central
    FROM iam_stage.organization_features
    WHERE snapshot_date = %(snapshot_date)s
) AS o ON true
{% endcall %}
