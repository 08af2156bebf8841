-- no_full_admin_policies · catalogue: sql/catalogue/controls/no_full_admin_policies.yaml
-- No managed policy in scope allows Action "*" on Resource "*".
-- Audit: for each managed policy in scope, the default version's document has no
-- statement with Effect Allow, Action "*" and Resource "*" (iam_audit_is_full_admin;
-- Statement may be one object or an array, Action/Resource a string or a list).
-- DECISION: an Allow statement counts as "*:*" when it leaves its holder able to make
-- itself administrator, however it is written: NotAction on Resource "*" whose list
-- leaves at least one of iam:Attach{User,Group,Role}Policy, iam:Put{User,Group,Role}Policy,
-- iam:CreatePolicyVersion, iam:AddUserToGroup, iam:UpdateAssumeRolePolicy allowed
-- (NotAction "s3:*", "iam:GetUser" or "*:Delete*": excluding some IAM actions is not
-- enough), and Action "*" with a NotResource that does not exclude IAM users, roles
-- and policies alike (NotResource "arn:aws:s3:::x/*"). A NotAction excluding every
-- one of those actions (AWS's PowerUserAccess: iam:*) is not "*:*" and passes here
-- (iam_audit_is_full_admin).
-- params.scope picks the policies evaluated:
--   customer_managed (v1.2.0): every customer-managed policy (is_aws_managed = false),
--                              attached or not;
--   attached (v1.3.0 on):      every policy with attachment_count > 0, customer or
--                              AWS managed.
-- DECISION: v1.2.0's title says "are not created"; its audit runs
-- `aws iam list-policies --output text` (every policy, no scope filter) and then reads
-- each default version. We take the title's word: only the account can create a
-- policy, so v1.2.0 evaluates customer-managed policies whether attached or not
-- (AWS-managed policies, AdministratorAccess included, are not created by the
-- account). v3.0.0's title says "are not attached" and its audit runs list-policies
-- --only-attached, so it evaluates every attached policy, including the AWS-managed
-- AdministratorAccess.
-- DECISION: a policy whose attachment count is unknown (NULL) is in scope of
-- 'attached': it cannot be shown to be unattached.
-- DECISION: a policy in scope whose document was not collected fails (it cannot be
-- shown to be free of "*:*"), with a reason that says so.
-- Reads: authorization_details (managed_policies). Resource: the policy's ARN.
{% from 'macros/check.sql' import check %}
{% call check('no_full_admin_policies', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, p.account_id, p.arn, 'iam_policy',
       CASE WHEN p.document IS NOT NULL AND s.admin_statements IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN p.document IS NULL
            THEN format('The document of %%s policy %%s was not collected, so it cannot be shown to be free of full "*:*" privileges.',
                        CASE WHEN p.is_aws_managed THEN 'AWS-managed' ELSE 'customer-managed' END, p.policy_name)
            WHEN s.admin_statements IS NULL
            THEN format('%%s policy %%s does not allow Action "*" on Resource "*".',
                        CASE WHEN p.is_aws_managed THEN 'AWS-managed' ELSE 'Customer-managed' END, p.policy_name)
            ELSE format('%%s policy %%s%%s allows full "*:*" administrative privileges in %%s; %%s',
                        CASE WHEN p.is_aws_managed THEN 'AWS-managed' ELSE 'Customer-managed' END, p.policy_name,
                        CASE WHEN p.attachment_count IS NULL THEN ' (attachment count unknown)'
                             WHEN p.attachment_count > 0
                             THEN format(' (attached to %%s %%s)', p.attachment_count,
                                         CASE WHEN p.attachment_count = 1 THEN 'entity' ELSE 'entities' END)
                             ELSE ' (not attached)' END,
                        s.admin_statements,
                        CASE WHEN p.is_aws_managed
                             THEN 'detach it everywhere and grant only the actions needed.'
                             ELSE 'replace it with a policy granting only the actions needed, detaching it first.' END)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.managed_policies p
  ON p.snapshot_date = %(snapshot_date)s AND p.account_id = r.account_id
CROSS JOIN LATERAL (SELECT iam_audit_full_admin_statements(p.document) AS admin_statements) AS s
WHERE CASE c.params->>'scope'
          WHEN 'customer_managed' THEN NOT p.is_aws_managed
          WHEN 'attached' THEN p.attachment_count IS DISTINCT FROM 0
      END
{% endcall %}
