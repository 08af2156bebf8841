-- hygiene_console_admin_without_mfa · iam_hygiene IH.5 · severity critical
-- No IAM user that holds administrator rights has a console password without MFA.
-- Audit: per IAM user of the credential report (root excluded: root_mfa covers it),
-- fail when password_enabled is true, mfa_active is false, and the user holds an
-- administrator policy through any of:
--   a managed policy attached to the user, or to a group the user is a member of,
--   that is AWS-managed AdministratorAccess or whose document has a "*:*" statement
--   (iam_audit_document_is_full_admin);
--   an inline policy of the user or of one of its groups with a "*:*" statement.
-- Users without a console password, or with MFA, pass whatever they hold; a console
-- user without MFA and without administrator rights passes here (CIS
-- console_users_mfa reports the missing MFA).
-- "*:*" includes Allow + NotAction on Resource "*" whose list leaves every IAM action
-- allowed (iam_audit_is_full_admin): a hidden administrator.
-- DECISION: permissions boundaries, SCPs and Deny statements are not subtracted: a
-- user holding a "*:*" policy is treated as an administrator.
-- Set-based: administrator grants are found once per snapshot and expanded to users
-- through group_memberships with one hash join (no per-user rescans).
-- Reads: credential_report; authorization_details (policy_attachments,
-- managed_policies, inline_policies, group_memberships). Resource: the user's ARN.
{% from 'macros/check.sql' import check %}
{% call check('hygiene_console_admin_without_mfa', needs=['credential_report', 'authorization_details']) %}
SELECT c.framework, c.check_id, u.account_id, u.arn, 'iam_user',
       CASE WHEN coalesce(u.password_enabled, false) AND NOT coalesce(u.mfa_active, false)
                 AND a.sources IS NOT NULL
            THEN 'fail' ELSE 'pass' END,
       CASE WHEN NOT coalesce(u.password_enabled, false)
            THEN format('User %%s has no console password.', u.user_name)
            WHEN coalesce(u.mfa_active, false)
            THEN format('User %%s has a console password and MFA.', u.user_name)
            WHEN a.sources IS NULL
            THEN format('User %%s has a console password without MFA but holds no administrator policy (the missing MFA is reported by the CIS MFA control).',
                        u.user_name)
            ELSE format('User %%s signs in to the console with a password and no MFA while holding administrator rights (%%s); enable MFA now, or remove the password or the administrator rights.',
                        u.user_name, a.sources)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.credential_report u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id AND NOT u.is_root
LEFT JOIN (
    WITH grants AS (
        SELECT pa.account_id, pa.entity_type, pa.entity_arn, pa.entity_name,
               CASE WHEN pa.entity_type = 'user'
                    THEN format('managed policy %%s attached to the user', coalesce(pa.policy_name, pa.policy_arn))
                    ELSE format('managed policy %%s through group %%s', coalesce(pa.policy_name, pa.policy_arn),
                                pa.entity_name)
               END AS source
        FROM iam_stage.policy_attachments pa
        LEFT JOIN iam_stage.managed_policies mp
               ON mp.snapshot_date = pa.snapshot_date AND mp.account_id = pa.account_id AND mp.arn = pa.policy_arn
        WHERE pa.snapshot_date = %(snapshot_date)s AND pa.entity_type IN ('user', 'group')
          AND (pa.policy_arn ~ '^arn:aws[a-z-]*:iam::aws:policy/AdministratorAccess$'
               OR iam_audit_document_is_full_admin(mp.document))
        UNION ALL
        SELECT ip.account_id, ip.entity_type, ip.entity_arn, ip.entity_name,
               CASE WHEN ip.entity_type = 'user'
                    THEN format('inline policy %%s of the user', ip.policy_name)
                    ELSE format('inline policy %%s of group %%s', ip.policy_name, ip.entity_name)
               END
        FROM iam_stage.inline_policies ip
        WHERE ip.snapshot_date = %(snapshot_date)s AND ip.entity_type IN ('user', 'group')
          AND iam_audit_document_is_full_admin(ip.document)
    ),
    user_sources AS (
        SELECT account_id, entity_arn AS user_arn, source FROM grants WHERE entity_type = 'user'
        UNION
        SELECT g.account_id, gm.user_arn, g.source
        FROM grants g
        JOIN iam_stage.group_memberships gm
          ON gm.snapshot_date = %(snapshot_date)s AND gm.account_id = g.account_id AND gm.group_name = g.entity_name
        WHERE g.entity_type = 'group'
    )
    SELECT account_id, user_arn, string_agg(source, '; ' ORDER BY source) AS sources
    FROM user_sources
    GROUP BY account_id, user_arn
) AS a ON a.account_id = u.account_id AND a.user_arn = u.arn
{% endcall %}
