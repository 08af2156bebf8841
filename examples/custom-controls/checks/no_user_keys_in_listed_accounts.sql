-- no_user_keys_in_listed_accounts · catalogue: catalogue/controls/no_user_keys_in_listed_accounts.yaml
-- In every account of params.accounts, no IAM user (root excluded) has an active access key.
-- One verdict per IAM user of the credential report. Users of accounts not listed pass: the rule is not
-- theirs. Unknown never passes: an access_key_N_active that the report left NULL fails in a listed account.
-- Reads: credential_report. Resource: the user's ARN.
{% from 'macros/check.sql' import check %}
{% call check('no_user_keys_in_listed_accounts', needs=['credential_report']) %}
SELECT c.framework, c.check_id, u.account_id, u.arn, 'iam_user',
       CASE WHEN NOT (c.params -> 'accounts') ? u.account_id THEN 'pass'
            WHEN u.access_key_1_active IS FALSE AND u.access_key_2_active IS FALSE THEN 'pass'
            ELSE 'fail' END,
       CASE WHEN NOT (c.params -> 'accounts') ? u.account_id
            THEN format('Account %%s is not one of the listed workload accounts.', u.account_id)
            WHEN u.access_key_1_active IS FALSE AND u.access_key_2_active IS FALSE
            THEN format('User %%s has no active access key.', u.user_name)
            WHEN u.access_key_1_active IS NULL OR u.access_key_2_active IS NULL
            THEN format('The credential report does not say whether user %%s has an active access key; in a workload account that counts as a key.', u.user_name)
            ELSE format('User %%s has an active access key in workload account %%s; move the workload to a role and delete the key.',
                        u.user_name, u.account_id)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.credential_report u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id AND NOT u.is_root
{% endcall %}
