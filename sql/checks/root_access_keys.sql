-- root_access_keys · cis_v1.2.0 1.12 · cis_v1.3.0 1.4 · cis_v1.4.0 1.4 · cis_v1.5.0 1.4 · cis_v2.0.0 1.4 · cis_v3.0.0 1.4 · cis_v4.0.0 1.4 · cis_v5.0.0 1.3 · cis_v6.0.0 2.3 · severity critical
-- The root user has no access keys, active or inactive.
-- Audit: GetAccountSummary AccountAccessKeysPresent = 0 passes, 1 fails.
-- DECISION: an account whose summary row or AccountAccessKeysPresent value is missing
-- fails (absence of root keys cannot be shown), with a reason that says so.
-- Reads: account_summary. Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('root_access_keys', needs=['account_summary']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN s.account_access_keys_present = 0 THEN 'pass' ELSE 'fail' END,
       CASE WHEN s.account_access_keys_present = 0
            THEN 'The root user has no access keys (AccountAccessKeysPresent = 0).'
            WHEN s.account_access_keys_present IS NULL
            THEN 'The account summary has no AccountAccessKeysPresent value, so it cannot be shown that the root user has no access keys; check the root user''s security credentials.'
            ELSE format('The root user has access keys (AccountAccessKeysPresent = %%s); sign in as root and delete them under Security credentials.',
                        s.account_access_keys_present)
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN iam_stage.account_summary s
  ON s.snapshot_date = %(snapshot_date)s AND s.account_id = r.account_id
{% endcall %}
