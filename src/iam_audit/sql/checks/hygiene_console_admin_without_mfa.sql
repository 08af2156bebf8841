-- hygiene_console_admin_without_mfa · catalogue: sql/catalogue/controls/hygiene_console_admin_without_mfa.yaml
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
-- DECISION: unknown never passes. A user with administrator rights whose
-- password_enabled or mfa_active is NULL fails (before, coalesce(password_enabled,
-- false) passed it). A policy the user holds whose document was not collected
-- (managed_policies.document or inline document NULL, or an attachment without a
-- managed_policies row) may be "*:*": it counts as possible administrator rights, so
-- such a user passes only when it has no password or has MFA.
-- DECISION: "*:*" (a "*:*" statement) is any Allow statement when it leaves its holder able to make
-- itself administrator, however it is written: NotAction on Resource "*" whose list
-- leaves at least one of iam:Attach{User,Group,Role}Policy, iam:Put{User,Group,Role}Policy,
-- iam:CreatePolicyVersion, iam:AddUserToGroup, iam:UpdateAssumeRolePolicy allowed
-- (NotAction "s3:*", "iam:GetUser" or "*:Delete*": excluding some IAM actions is not
-- enough), and Action "*" with a NotResource that does not exclude IAM users, roles
-- and policies alike (NotResource "arn:aws:s3:::x/*"). A NotAction excluding every
-- one of those actions (AWS's PowerUserAccess: iam:*) is not "*:*" and passes here
-- (iam_audit_is_full_admin).
-- Administrator rights include the power to become one: a policy with a statement
-- allowing iam:Attach{User,Group,Role}Policy, iam:Put{User,Group,Role}Policy,
-- iam:CreatePolicyVersion, iam:AddUserToGroup or iam:UpdateAssumeRolePolicy on every
-- resource of the kind it acts on, or (user actions) on the caller's own user
-- (iam_audit_document_can_self_admin), such as AWS-managed IAMFullAccess: its holder
-- attaches AdministratorAccess to itself. A grant on one named role, group or
-- policy is not counted (whether it serves the user is not known; IH.10 reports it). The
-- reason says "which lets it make itself administrator". Longer paths through
-- other services are hygiene_principal_escalation's.
-- DECISION: permissions boundaries, SCPs and Deny statements are not subtracted: a
-- user holding a "*:*" policy is treated as an administrator.
-- Set-based: administrator grants are found once per snapshot and expanded to users
-- through group_memberships with one hash join (no per-user rescans).
-- Reads: credential_report; authorization_details (policy_attachments,
-- managed_policies, inline_policies, group_memberships). Resource: the user's ARN.
{% from 'macros/check.sql' import check %}
{% call check('hygiene_console_admin_without_mfa', needs=['credential_report', 'authorization_details']) %}
SELECT c.framework, c.check_id, u.account_id, u.arn, 'iam_user',
       CASE WHEN u.password_enabled IS FALSE OR u.mfa_active IS TRUE
                 OR (a.sources IS NULL AND a.unknown_sources IS NULL)
            THEN 'pass' ELSE 'fail' END,
       CASE WHEN u.password_enabled IS FALSE
            THEN format('User %%s has no console password.', u.user_name)
            WHEN u.mfa_active IS TRUE
            THEN format('User %%s has MFA.', u.user_name)
            WHEN a.sources IS NULL AND a.unknown_sources IS NULL
            THEN format('User %%s holds no administrator policy (a console password without MFA, if any, is reported by the CIS MFA control).',
                        u.user_name)
            WHEN a.sources IS NOT NULL AND u.password_enabled IS TRUE AND u.mfa_active IS FALSE
            THEN format('User %%s signs in to the console with a password and no MFA while holding administrator rights (%%s); enable MFA now, or remove the password or the administrator rights.',
                        u.user_name, a.sources)
            WHEN a.sources IS NOT NULL
            THEN format('User %%s holds administrator rights (%%s) and the credential report does not say whether it has %%s; confirm MFA or remove the password or the rights.',
                        u.user_name, a.sources,
                        concat_ws(' or ', CASE WHEN u.password_enabled IS NULL THEN 'a console password (password_enabled unknown)' END,
                                  CASE WHEN u.mfa_active IS NULL THEN 'MFA (mfa_active unknown)' END))
            ELSE format('User %%s may sign in to the console without MFA and holds policies whose documents were not collected (%%s), so administrator rights cannot be ruled out.',
                        u.user_name, a.unknown_sources)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.credential_report u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id AND NOT u.is_root
LEFT JOIN (
    -- each distinct document is judged once (many principals share one)
    WITH judged AS MATERIALIZED (
        SELECT d.document, iam_audit_document_is_full_admin(d.document) AS full_admin,
               iam_audit_document_can_self_admin(d.document) AS self_admin
        FROM (SELECT document FROM iam_stage.managed_policies
              WHERE snapshot_date = %(snapshot_date)s AND document IS NOT NULL
              UNION
              SELECT document FROM iam_stage.inline_policies
              WHERE snapshot_date = %(snapshot_date)s AND document IS NOT NULL) AS d
    ),
    grants AS (
        SELECT pa.account_id, pa.entity_type, pa.entity_arn, pa.entity_name,
               CASE WHEN pa.entity_type = 'user'
                    THEN format('managed policy %%s attached to the user', coalesce(pa.policy_name, pa.policy_arn))
                    ELSE format('managed policy %%s through group %%s', coalesce(pa.policy_name, pa.policy_arn),
                                pa.entity_name)
               END
               || CASE WHEN mp.document IS NOT NULL AND NOT j.full_admin
                            AND pa.policy_arn !~ '^arn:aws[a-z-]*:iam::aws:policy/AdministratorAccess$'
                       THEN ', which lets it make itself administrator' ELSE '' END AS source,
               pa.policy_arn ~ '^arn:aws[a-z-]*:iam::aws:policy/AdministratorAccess$'
                   OR mp.document IS NOT NULL AS certain
        FROM iam_stage.policy_attachments pa
        LEFT JOIN iam_stage.managed_policies mp
               ON mp.snapshot_date = pa.snapshot_date AND mp.account_id = pa.account_id AND mp.arn = pa.policy_arn
        LEFT JOIN judged j ON j.document = mp.document
        WHERE pa.snapshot_date = %(snapshot_date)s AND pa.entity_type IN ('user', 'group')
          AND (pa.policy_arn ~ '^arn:aws[a-z-]*:iam::aws:policy/AdministratorAccess$'
               OR mp.document IS NULL OR j.full_admin OR j.self_admin)
        UNION ALL
        SELECT ip.account_id, ip.entity_type, ip.entity_arn, ip.entity_name,
               CASE WHEN ip.entity_type = 'user'
                    THEN format('inline policy %%s of the user', ip.policy_name)
                    ELSE format('inline policy %%s of group %%s', ip.policy_name, ip.entity_name)
               END
               || CASE WHEN ip.document IS NOT NULL AND NOT j.full_admin
                       THEN ', which lets it make itself administrator' ELSE '' END,
               ip.document IS NOT NULL
        FROM iam_stage.inline_policies ip
        LEFT JOIN judged j ON j.document = ip.document
        WHERE ip.snapshot_date = %(snapshot_date)s AND ip.entity_type IN ('user', 'group')
          AND (ip.document IS NULL OR j.full_admin OR j.self_admin)
    ),
    user_sources AS (
        SELECT account_id, entity_arn AS user_arn, source, certain FROM grants WHERE entity_type = 'user'
        UNION
        SELECT g.account_id, gm.user_arn, g.source, g.certain
        FROM grants g
        JOIN iam_stage.group_memberships gm
          ON gm.snapshot_date = %(snapshot_date)s AND gm.account_id = g.account_id AND gm.group_name = g.entity_name
        WHERE g.entity_type = 'group'
    )
    SELECT account_id, user_arn,
           string_agg(source, '; ' ORDER BY source) FILTER (WHERE certain) AS sources,
           string_agg(source, '; ' ORDER BY source) FILTER (WHERE NOT certain) AS unknown_sources
    FROM user_sources
    GROUP BY account_id, user_arn
) AS a ON a.account_id = u.account_id AND a.user_arn = u.arn
{% endcall %}
