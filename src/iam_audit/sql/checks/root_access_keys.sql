-- root_access_keys · catalogue: sql/catalogue/controls/root_access_keys.yaml
-- The root user has no access keys (v1.3.0 on: active or inactive; v1.2.0: no active one).
-- Audit: GetAccountSummary AccountAccessKeysPresent = 0 passes.
-- params.inactive_keys_count = false (v1.2.0 1.12): its audit tests the credential
-- report's <root_account> access_key_1_active and access_key_2_active flags, so a
-- root user whose keys are all inactive passes there too. From v1.3.0
-- (inactive_keys_count = true) any root key fails, whatever its status.
-- DECISION: an account whose summary row or AccountAccessKeysPresent value is missing
-- fails (absence of root keys cannot be shown), with a reason that says so; in v1.2.0
-- both flags must be an explicit false (NULL or a missing root row is unknown).
-- DECISION: credential_report is needed by every version (needs are per logic), as in
-- root_mfa: without it, every version gets 'error' rather than a verdict.
-- Reads: account_summary, credential_report. Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('root_access_keys', needs=['account_summary', 'credential_report']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN s.account_access_keys_present = 0 THEN 'pass'
            WHEN NOT (c.params->>'inactive_keys_count')::boolean
                 AND u.access_key_1_active IS FALSE AND u.access_key_2_active IS FALSE THEN 'pass'
            ELSE 'fail' END,
       CASE WHEN s.account_access_keys_present = 0
            THEN 'The root user has no access keys (AccountAccessKeysPresent = 0).'
            WHEN NOT (c.params->>'inactive_keys_count')::boolean
                 AND u.access_key_1_active IS FALSE AND u.access_key_2_active IS FALSE
            THEN 'The root user has no active access key (credential report access_key_1_active and access_key_2_active are false).'
            WHEN NOT (c.params->>'inactive_keys_count')::boolean
                 AND (u.access_key_1_active OR u.access_key_2_active)
            THEN 'The root user has an active access key (credential report access_key_N_active = true); sign in as root and delete it under Security credentials.'
            WHEN NOT (c.params->>'inactive_keys_count')::boolean
            THEN 'Neither the account summary nor the credential report''s root row shows that the root user has no active access key; check the root user''s security credentials.'
            WHEN s.account_access_keys_present IS NULL
            THEN 'The account summary has no AccountAccessKeysPresent value, so it cannot be shown that the root user has no access keys; check the root user''s security credentials.'
            ELSE format('The root user has access keys (AccountAccessKeysPresent = %%s); sign in as root and delete them under Security credentials, inactive ones included.',
                        s.account_access_keys_present)
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN iam_stage.account_summary s
  ON s.snapshot_date = %(snapshot_date)s AND s.account_id = r.account_id
LEFT JOIN iam_stage.credential_report u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id AND u.is_root
{% endcall %}
