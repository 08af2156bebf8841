-- hygiene_service_wildcards · catalogue: sql/catalogue/controls/hygiene_service_wildcards.yaml
-- No customer-managed or inline policy allows every action of a service.
-- Audit: per customer-managed policy (its default version's document) and per inline
-- policy of a user, group or role: fail when an Allow statement's Action contains a
-- full-service wildcard "<service>:*" (case-insensitive; e.g. "s3:*", "EC2:*").
-- DECISION: "*" alone is not counted here: a statement with Action "*" is the
-- full-admin case that the CIS full-admin controls (and hygiene_inline_admin) report.
-- Partial wildcards ("s3:Get*", "ec2:Describe*") pass: they name a family of actions.
-- DECISION: an Allow statement with NotAction grants every action of every service
-- its list does not name, which is wider than any "<service>:*": it fails here,
-- reported as 'NotAction [...]'. Two exceptions keep one finding per grant: a
-- NotAction that is itself "*" (grants nothing), and a statement that
-- iam_audit_is_full_admin already counts as full "*:*" (the full-admin checks
-- report it, as they do Action "*"). Deny statements are never findings.
-- DECISION: AWS-managed policies are skipped: their content is AWS's, and many of them
-- are service-wide by design (AmazonS3FullAccess, ...); attaching them is a choice the
-- CIS and access reviews cover.
-- DECISION: a policy whose document was not collected fails, with a reason saying so.
-- Reads: authorization_details (managed_policies, inline_policies). Resource: the
-- policy ARN for managed policies; "<entity ARN>#<policy name>" for inline policies.
{% from 'macros/check.sql' import check %}
{% call check('hygiene_service_wildcards', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, p.account_id, p.resource_id, p.resource_type,
       CASE WHEN p.document IS NOT NULL AND w.wildcards IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN p.document IS NULL
            THEN format('The document of %%s was not collected, so it cannot be shown to be free of service-wide wildcards.',
                        lower(left(p.label, 1)) || substr(p.label, 2))
            WHEN w.wildcards IS NULL
            THEN format('%%s allows no service-wide wildcard action.', p.label)
            ELSE format('%%s allows every action of a service: %%s; list the actions needed instead.',
                        p.label, w.wildcards)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_audit_customer_policies(%(snapshot_date)s::date) AS p ON p.account_id = r.account_id
LEFT JOIN LATERAL (
    SELECT string_agg(format('%%s in statement %%s%%s', s.actions, s.statement_index,
                             CASE WHEN s.sid IS NOT NULL THEN format(' (Sid %%s)', s.sid) ELSE '' END),
                      '; ' ORDER BY s.statement_index) AS wildcards
    FROM (
        SELECT st.statement_index, st.statement ->> 'Sid' AS sid,
               string_agg(a.pattern, ', ' ORDER BY a.ord) AS actions
        FROM iam_audit_statements(p.document) AS st
        CROSS JOIN LATERAL jsonb_array_elements_text(iam_audit_as_array(st.statement -> 'Action'))
             WITH ORDINALITY AS a(pattern, ord)
        WHERE coalesce(st.statement ->> 'Effect', '') = 'Allow'
          AND a.pattern ~* '^[a-z0-9-]+:\*+$'
        GROUP BY st.statement_index, st.statement ->> 'Sid'
        UNION ALL
        SELECT st.statement_index, st.statement ->> 'Sid',
               format('NotAction %%s (every action of every service not listed)', (st.statement -> 'NotAction')::text)
        FROM iam_audit_statements(p.document) AS st
        WHERE coalesce(st.statement ->> 'Effect', '') = 'Allow'
          AND jsonb_typeof(st.statement) = 'object' AND st.statement ? 'NotAction'
          AND NOT iam_audit_as_array(st.statement -> 'NotAction') @> '["*"]'::jsonb
          AND NOT iam_audit_is_full_admin(st.statement)
    ) AS s
) AS w ON true
{% endcall %}
