-- policies_on_groups_or_roles_only · catalogue: sql/catalogue/controls/policies_on_groups_or_roles_only.yaml
-- IAM users get permissions only through groups (or roles), never from policies of
-- their own.
-- Audit: per IAM user (GetAccountAuthorizationDetails UserDetailList):
-- ListAttachedUserPolicies and ListUserPolicies must both be empty.
-- Reads: authorization_details (users, policy_attachments and inline_policies with
-- entity_type 'user'). Resource: the user's ARN.
{% from 'macros/check.sql' import check %}
{% call check('policies_on_groups_or_roles_only', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, u.account_id, u.arn, 'iam_user',
       CASE WHEN m.policies IS NULL AND i.policies IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN m.policies IS NULL AND i.policies IS NULL
            THEN format('User %%s has no managed or inline policies of its own.', u.user_name)
            ELSE format('User %%s has policies of its own: %%s. Move them to a group and add the user to it.',
                        u.user_name,
                        concat_ws('; ', 'attached managed ' || m.policies, 'inline ' || i.policies))
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.users u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id
LEFT JOIN (
    SELECT account_id, entity_arn,
           string_agg(coalesce(policy_name, policy_arn) || ' (' || policy_arn || ')', ', '
                      ORDER BY policy_arn) AS policies
    FROM iam_stage.policy_attachments
    WHERE snapshot_date = %(snapshot_date)s AND entity_type = 'user'
    GROUP BY account_id, entity_arn
) AS m ON m.account_id = u.account_id AND m.entity_arn = u.arn
LEFT JOIN (
    SELECT account_id, entity_arn, string_agg(policy_name, ', ' ORDER BY policy_name) AS policies
    FROM iam_stage.inline_policies
    WHERE snapshot_date = %(snapshot_date)s AND entity_type = 'user'
    GROUP BY account_id, entity_arn
) AS i ON i.account_id = u.account_id AND i.entity_arn = u.arn
{% endcall %}
