-- support_role · catalogue: sql/catalogue/controls/support_role.yaml
-- The AWS-managed AWSSupportAccess policy is attached to a principal of an accepted
-- type, so incidents can be raised with AWS Support.
-- Audit: ListEntitiesForPolicy on arn:aws:iam::aws:policy/AWSSupportAccess must list
-- at least one entity whose type is in params.principal_types:
--   v1.2.0 1.20 ([user, group, role]): its audit accepts the policy attached to any
--     user, group or role;
--   v1.3.0 on ([role]): the audit requires a non-empty PolicyRoles.
-- DECISION: where only roles count, an attachment to users or groups only fails; the
-- reason names those users/groups.
-- The policy is matched in every partition (arn:aws, arn:aws-cn, arn:aws-us-gov).
-- Reads: authorization_details (policy_attachments). Resource: the 12-digit account id.
{% from 'macros/check.sql' import check %}
{% call check('support_role', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN a.accepted IS NOT NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN a.accepted IS NOT NULL
            THEN format('AWSSupportAccess is attached to %%s.', a.accepted)
            WHEN a.others IS NOT NULL
            THEN format('AWSSupportAccess is attached only to %%s, not to a %%s; create a support role and attach arn:aws:iam::aws:policy/AWSSupportAccess to it.',
                        a.others, t.names)
            ELSE format('No %%s has the AWSSupportAccess policy; create a support role and attach arn:aws:iam::aws:policy/AWSSupportAccess to it.',
                        t.names)
       END
FROM controls c
CROSS JOIN LATERAL (
    SELECT array_agg(x) AS types,
           string_agg(x, ' or ' ORDER BY array_position(ARRAY['user', 'group', 'role'], x)) AS names
    FROM jsonb_array_elements_text(c.params -> 'principal_types') AS x
) AS t
CROSS JOIN ready_accounts r
LEFT JOIN LATERAL (
    SELECT string_agg(entity_type || ' ' || entity_name, ', ' ORDER BY entity_type, entity_name)
               FILTER (WHERE entity_type = ANY(t.types)) AS accepted,
           string_agg(entity_type || ' ' || entity_name, ', ' ORDER BY entity_type, entity_name)
               FILTER (WHERE NOT entity_type = ANY(t.types)) AS others
    FROM iam_stage.policy_attachments
    WHERE snapshot_date = %(snapshot_date)s AND account_id = r.account_id
      AND policy_arn ~ '^arn:aws[a-z-]*:iam::aws:policy/AWSSupportAccess$'
) AS a ON true
{% endcall %}
