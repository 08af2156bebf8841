-- hygiene_principal_escalation · catalogue: sql/catalogue/controls/hygiene_principal_escalation.yaml
-- No IAM user, role or group can escalate its privileges through the policies it holds.
-- Audit: per user, role and group, the effective escalation actions are gathered
-- from every policy the principal holds: its inline policies and attached managed
-- policies, customer-managed and AWS-managed alike, and for a user those of every
-- group it is a member of. An action counts when some held policy allows it
-- (iam_audit_document_facts 'allow'), no held policy denies it everywhere ('deny':
-- unconditional Deny on Resource "*"), and the permissions boundary, when the
-- principal has one, allows it too (iam_audit_boundary_allows). The principal fails
-- when its effective actions meet an escalation rule of iam_audit_escalation_rules()
-- (the same rules as hygiene_privilege_escalation, with the same self-only and
-- iam:PassedToService exceptions), the actions of one rule possibly coming from
-- different policies (iam:PassRole from a customer policy, ec2:RunInstances from
-- AWS-managed AmazonEC2FullAccess). The reason names the policy granting each action.
-- DECISION: an iam:PassRole statement whose resources are only named roles
-- (iam_audit_statement_role_targets) counts only when one of them is privileged: an
-- administrator, a role that can itself escalate (found in a first pass over all
-- principals, with every iam:PassRole counted), a role holding a policy not
-- collected, or a role not in the snapshot (another account, deleted). Passing a
-- role that can neither administer nor escalate leads nowhere; the pass reason
-- names the roles. One level deep: a role cleared in the second pass still counts
-- as privileged if it escalated in the first (conservative).
-- DECISION: a rule that needs a Deny to remove (iam:Detach*/Delete*Policy) holds when
-- any policy the principal holds has a Deny statement.
-- DECISION: a principal holding "*:*" (iam_audit_is_full_admin, through any policy,
-- within its boundary) passes here with a reason naming the grant: it has nothing
-- to escalate to; administrators are reported by the CIS full-admin control, IH.2
-- and IH.5.
-- DECISION: a permissions boundary whose document was not collected limits nothing
-- (findings are never hidden by an unknown boundary); the reason says so. SCPs,
-- session policies and resource policies are not collected and not evaluated.
-- DECISION: a held policy whose document was not collected (an inline document or
-- managed_policies.document NULL, or an attachment without a managed_policies row)
-- may complete a path or grant "*:*": the principal cannot be shown to be free of
-- escalation, so it fails (even when other policies make it an administrator),
-- with a reason naming the policies not collected.
-- DECISION: service-linked roles (path /aws-service-role/) get no verdict: only
-- their AWS service can assume them and their policies are AWS's.
-- DECISION: Denies are judged as in hygiene_privilege_escalation: a Deny with
-- resources or conditions removes nothing (conservative).
-- Cost: facts are computed once per distinct document; principals join them
-- (principals x held policies x escalation actions per document), in
-- iam_audit_principal_escalations (sql/functions/032_principal_functions.sql), planned
-- without nested loops.
-- Reads: authorization_details (users, roles, groups, group_memberships,
-- policy_attachments, managed_policies, inline_policies). Resource: the principal's ARN.
{% from 'macros/check.sql' import check %}
{% call check('hygiene_principal_escalation', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, e.account_id, e.arn, e.resource_type, e.status, e.reason
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_audit_principal_escalations(%(snapshot_date)s::date) AS e ON e.account_id = r.account_id
{% endcall %}
