-- hygiene_inline_admin · catalogue: sql/catalogue/controls/hygiene_inline_admin.yaml
-- No inline policy of a user, group or role allows Action "*" on Resource "*".
-- Audit: per inline policy (GetAccountAuthorizationDetails UserPolicyList,
-- GroupPolicyList, RolePolicyList), no statement has Effect Allow, Action "*" and
-- Resource "*" (iam_audit_is_full_admin, as the CIS full-admin check uses for
-- managed policies; Statement one object or an array, Action/Resource a string or
-- a list).
-- DECISION: an Allow statement counts as "*:*" when it leaves its holder able to make
-- itself administrator, however it is written: NotAction on Resource "*" whose list
-- leaves at least one of iam:Attach{User,Group,Role}Policy, iam:Put{User,Group,Role}Policy,
-- iam:CreatePolicyVersion, iam:AddUserToGroup, iam:UpdateAssumeRolePolicy allowed
-- (NotAction "s3:*", "iam:GetUser" or "*:Delete*": excluding some IAM actions is not
-- enough), and Action "*" with a NotResource that does not exclude IAM users, roles
-- and policies alike (NotResource "arn:aws:s3:::x/*"). A NotAction excluding every
-- one of those actions (AWS's PowerUserAccess: iam:*) is not "*:*" and passes here
-- (iam_audit_is_full_admin).
-- DECISION: an inline policy whose document was not collected fails (it cannot be
-- shown to be free of "*:*"), with a reason saying so.
-- Reads: authorization_details (inline_policies). Resource: "<entity ARN>#<policy
-- name>" (an inline policy has no ARN of its own).
{% from 'macros/check.sql' import check %}
{% call check('hygiene_inline_admin', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, p.account_id, p.entity_arn || '#' || p.policy_name, 'iam_inline_policy',
       CASE WHEN p.document IS NOT NULL AND s.admin_statements IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN p.document IS NULL
            THEN format('The document of inline policy %%s of %%s %%s was not collected, so it cannot be shown to be free of full "*:*" privileges.',
                        p.policy_name, p.entity_type, p.entity_name)
            WHEN s.admin_statements IS NULL
            THEN format('Inline policy %%s of %%s %%s does not allow Action "*" on Resource "*".',
                        p.policy_name, p.entity_type, p.entity_name)
            ELSE format('Inline policy %%s of %%s %%s allows full "*:*" administrative privileges in %%s; delete it and grant a managed policy with only the actions needed.',
                        p.policy_name, p.entity_type, p.entity_name, s.admin_statements)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.inline_policies p
  ON p.snapshot_date = %(snapshot_date)s AND p.account_id = r.account_id
CROSS JOIN LATERAL (SELECT iam_audit_full_admin_statements(p.document) AS admin_statements) AS s
{% endcall %}
