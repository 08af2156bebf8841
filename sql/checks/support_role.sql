-- support_role · cis_v1.2.0 1.20 · cis_v1.3.0 1.17 · cis_v1.4.0 1.17 · cis_v1.5.0 1.17 · cis_v2.0.0 1.17 · cis_v3.0.0 1.17 · cis_v4.0.0 1.17 · cis_v5.0.0 1.16 · cis_v6.0.0 2.16 · severity low
-- A role has the AWS-managed AWSSupportAccess policy, so incidents can be raised with
-- AWS Support.
-- Audit: ListEntitiesForPolicy on arn:aws:iam::aws:policy/AWSSupportAccess must return
-- a non-empty PolicyRoles.
-- DECISION: only an attachment to a role passes. An attachment to users or groups only
-- fails (the audit requires PolicyRoles); the reason names those users/groups.
-- The policy is matched in every partition (arn:aws, arn:aws-cn, arn:aws-us-gov).
-- Reads: authorization_details (policy_attachments). Resource: the 12-digit account id.
{% from 'macros/check.sql' import check %}
{% call check('support_role', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN a.roles IS NOT NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN a.roles IS NOT NULL
            THEN format('AWSSupportAccess is attached to role(s) %%s.', a.roles)
            WHEN a.others IS NOT NULL
            THEN format('AWSSupportAccess is attached only to %%s, not to a role; create a support role and attach arn:aws:iam::aws:policy/AWSSupportAccess to it.', a.others)
            ELSE 'No role has the AWSSupportAccess policy; create a support role and attach arn:aws:iam::aws:policy/AWSSupportAccess to it.'
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN (
    SELECT account_id,
           string_agg(entity_name, ', ' ORDER BY entity_name) FILTER (WHERE entity_type = 'role') AS roles,
           string_agg(entity_type || ' ' || entity_name, ', ' ORDER BY entity_type, entity_name)
               FILTER (WHERE entity_type <> 'role') AS others
    FROM iam_stage.policy_attachments
    WHERE snapshot_date = %(snapshot_date)s
      AND policy_arn ~ '^arn:aws[a-z-]*:iam::aws:policy/AWSSupportAccess$'
    GROUP BY account_id
) AS a ON a.account_id = r.account_id
{% endcall %}
