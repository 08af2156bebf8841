-- cloudshell_full_access · catalogue: sql/catalogue/controls/cloudshell_full_access.yaml
-- The AWS-managed AWSCloudShellFullAccess policy is attached to no user, group or role.
-- Audit: ListEntitiesForPolicy on arn:aws:iam::aws:policy/AWSCloudShellFullAccess must
-- return empty PolicyUsers, PolicyGroups and PolicyRoles.
-- One verdict per account (the policy is the resource, so it exists in every account);
-- the policy is matched in every partition (arn:aws, arn:aws-cn, arn:aws-us-gov).
-- Reads: authorization_details (policy_attachments).
-- Resource: arn:aws:iam::aws:policy/AWSCloudShellFullAccess.
{% from 'macros/check.sql' import check %}
{% call check('cloudshell_full_access', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, r.account_id,
       'arn:aws:iam::aws:policy/AWSCloudShellFullAccess', 'iam_policy',
       CASE WHEN a.entities IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN a.entities IS NULL
            THEN 'AWSCloudShellFullAccess is not attached to any user, group or role.'
            ELSE format('AWSCloudShellFullAccess is attached to %%s %%s: %%s; detach it and grant a narrower policy.',
                        a.n, CASE WHEN a.n = 1 THEN 'entity' ELSE 'entities' END, a.entities)
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN (
    SELECT account_id, count(*) AS n,
           string_agg(entity_type || ' ' || entity_name, ', ' ORDER BY entity_type, entity_name) AS entities
    FROM iam_stage.policy_attachments
    WHERE snapshot_date = %(snapshot_date)s
      AND policy_arn ~ '^arn:aws[a-z-]*:iam::aws:policy/AWSCloudShellFullAccess$'
    GROUP BY account_id
) AS a ON a.account_id = r.account_id
{% endcall %}
