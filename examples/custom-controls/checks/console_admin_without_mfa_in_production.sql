-- console_admin_without_mfa_in_production · catalogue: catalogue/controls/console_admin_without_mfa_in_production.yaml
-- In accounts tagged params.tag_key = params.tag_value (Organizations account tags), no IAM user with a
-- console password and no MFA holds administrator rights: AWS-managed AdministratorAccess or a policy
-- with an administrator statement (iam_audit_document_is_full_admin), managed or inline, on the user or
-- on one of its groups.
-- Accounts without the tag pass every user. Unknown never passes: a policy whose document was not
-- collected counts as administrator rights, and a NULL password_enabled or mfa_active fails such a user.
-- The account_tags data set must have been read (else every verdict is 'error': an account whose tags
-- are unknown may be production).
-- Reads: credential_report, authorization_details (policy_attachments, managed_policies,
-- inline_policies, group_memberships), account_tags. Resource: the user's ARN.
{% from 'macros/check.sql' import check %}
{% call check('console_admin_without_mfa_in_production', needs=['credential_report', 'authorization_details', 'account_tags']) %}
SELECT c.framework, c.check_id, u.account_id, u.arn, 'iam_user',
       CASE WHEN t.value IS DISTINCT FROM c.params ->> 'tag_value' THEN 'pass'
            WHEN u.password_enabled IS FALSE OR u.mfa_active IS TRUE OR a.user_arn IS NULL THEN 'pass'
            ELSE 'fail' END,
       CASE WHEN t.value IS DISTINCT FROM c.params ->> 'tag_value'
            THEN format('Account %%s is not tagged %%s=%%s.', u.account_id, c.params ->> 'tag_key', c.params ->> 'tag_value')
            WHEN u.password_enabled IS FALSE THEN format('User %%s has no console password.', u.user_name)
            WHEN u.mfa_active IS TRUE THEN format('User %%s has MFA.', u.user_name)
            WHEN a.user_arn IS NULL THEN format('User %%s holds no administrator policy.', u.user_name)
            ELSE format('User %%s may sign in to the production console without MFA while holding administrator rights (%%s); enable MFA now, or remove the password or the rights.',
                        u.user_name, a.sources)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.credential_report u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id AND NOT u.is_root
LEFT JOIN iam_stage.account_tags t
  ON t.snapshot_date = %(snapshot_date)s AND t.account_id = u.account_id AND t.key = c.params ->> 'tag_key'
LEFT JOIN (
    WITH grants AS (
        SELECT pa.account_id, pa.entity_type, pa.entity_name, pa.entity_arn,
               coalesce(pa.policy_name, pa.policy_arn)
               || CASE WHEN mp.document IS NULL AND pa.policy_arn !~ ':iam::aws:policy/AdministratorAccess$'
                       THEN ' (document not collected)' ELSE '' END AS source
        FROM iam_stage.policy_attachments pa
        LEFT JOIN iam_stage.managed_policies mp
               ON mp.snapshot_date = pa.snapshot_date AND mp.account_id = pa.account_id AND mp.arn = pa.policy_arn
        WHERE pa.snapshot_date = %(snapshot_date)s AND pa.entity_type IN ('user', 'group')
          AND (pa.policy_arn ~ ':iam::aws:policy/AdministratorAccess$' OR mp.document IS NULL
               OR iam_audit_document_is_full_admin(mp.document))
        UNION ALL
        SELECT ip.account_id, ip.entity_type, ip.entity_name, ip.entity_arn,
               'inline ' || ip.policy_name || CASE WHEN ip.document IS NULL THEN ' (document not collected)' ELSE '' END
        FROM iam_stage.inline_policies ip
        WHERE ip.snapshot_date = %(snapshot_date)s AND ip.entity_type IN ('user', 'group')
          AND (ip.document IS NULL OR iam_audit_document_is_full_admin(ip.document))
    ),
    per_user AS (
        SELECT account_id, entity_arn AS user_arn, source FROM grants WHERE entity_type = 'user'
        UNION
        SELECT g.account_id, gm.user_arn, g.source || ' through group ' || g.entity_name
        FROM grants g
        JOIN iam_stage.group_memberships gm
          ON gm.snapshot_date = %(snapshot_date)s AND gm.account_id = g.account_id AND gm.group_name = g.entity_name
        WHERE g.entity_type = 'group'
    )
    SELECT account_id, user_arn, string_agg(source, '; ' ORDER BY source) AS sources
    FROM per_user
    GROUP BY account_id, user_arn
) AS a ON a.account_id = u.account_id AND a.user_arn = u.arn
{% endcall %}
