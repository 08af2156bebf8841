-- root_hardware_mfa · cis_v1.2.0 1.14 · cis_v1.3.0 1.6 · cis_v1.4.0 1.6 · cis_v1.5.0 1.6 · cis_v2.0.0 1.6 · cis_v3.0.0 1.6 · cis_v4.0.0 1.6 · cis_v5.0.0 1.5 · cis_v6.0.0 2.5 · severity high
-- The root user's MFA is a hardware device, not a virtual one.
-- Audit: GetAccountSummary AccountMFAEnabled = 1, and ListVirtualMFADevices has no
-- device for root (SerialNumber ending ':mfa/root-account-mfa-device' or User.Arn
-- ending ':root').
-- DECISION: a root virtual device counts whether its serial or its user ARN identifies
-- root (either is enough to fail). A missing summary row fails like "no MFA".
-- Reads: account_summary, virtual_mfa_devices. Resource: the 12-digit account id.
{% from 'macros/check.sql' import check %}
{% call check('root_hardware_mfa', needs=['account_summary', 'virtual_mfa_devices']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN s.account_mfa_enabled = 1 AND v.serials IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN s.account_mfa_enabled IS DISTINCT FROM 1
            THEN 'The root user has no MFA at all (AccountMFAEnabled is not 1); sign in as root and assign a hardware MFA device.'
            WHEN v.serials IS NOT NULL
            THEN format('The root user''s MFA is virtual (%%s), not hardware; replace it with a hardware MFA device.', v.serials)
            ELSE 'The root user has MFA enabled and no virtual MFA device, so it is a hardware device.'
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN iam_stage.account_summary s
  ON s.snapshot_date = %(snapshot_date)s AND s.account_id = r.account_id
LEFT JOIN (
    SELECT account_id, string_agg(serial_number, ', ' ORDER BY serial_number) AS serials
    FROM iam_stage.virtual_mfa_devices
    WHERE snapshot_date = %(snapshot_date)s
      AND (serial_number LIKE '%%:mfa/root-account-mfa-device' OR user_arn LIKE '%%:root')
    GROUP BY account_id
) AS v ON v.account_id = r.account_id
{% endcall %}
