-- hygiene_role_trusts_anyone · iam_hygiene IH.3 · severity critical
-- No role's trust policy lets any principal assume it without a condition.
-- Audit: per role, the trust policy (iam_stage.roles.assume_role_policy) has no
-- statement with Effect Allow, no Condition, and either Principal "*" or an AWS
-- principal "*" (a string or an element of a list).
-- DECISION: an Allow statement with NotPrincipal and no Condition also fails: it
-- trusts every principal except the ones listed.
-- DECISION: any non-empty Condition makes the statement pass here, whatever its keys
-- (aws:PrincipalOrgID, sts:ExternalId, aws:SourceArn, ...): judging whether a
-- condition is restrictive enough needs a person. Service and Federated principals
-- are never "anyone".
-- DECISION: a role whose trust policy was not collected fails, with a reason saying so.
-- Reads: authorization_details (roles). Resource: the role's ARN.
{% from 'macros/check.sql' import check %}
{% call check('hygiene_role_trusts_anyone', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, ro.account_id, ro.arn, 'iam_role',
       CASE WHEN ro.assume_role_policy IS NOT NULL AND s.open_statements IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN ro.assume_role_policy IS NULL
            THEN format('The trust policy of role %%s was not collected, so it cannot be shown not to trust any principal.',
                        ro.role_name)
            WHEN s.open_statements IS NULL
            THEN format('Role %%s trusts no wildcard principal without a condition.', ro.role_name)
            ELSE format('Role %%s can be assumed by any AWS principal: its trust policy allows %%s without a Condition; name the trusted principals or add a condition such as aws:PrincipalOrgID.',
                        ro.role_name, s.open_statements)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.roles ro
  ON ro.snapshot_date = %(snapshot_date)s AND ro.account_id = r.account_id
LEFT JOIN LATERAL (
    SELECT string_agg(format('%%s in statement %%s%%s',
                             CASE WHEN st.statement ? 'NotPrincipal' THEN 'NotPrincipal'
                                  WHEN st.statement -> 'Principal' = '"*"'::jsonb THEN 'Principal "*"'
                                  ELSE 'Principal {"AWS": "*"}' END,
                             st.statement_index,
                             CASE WHEN st.statement ? 'Sid' THEN format(' (Sid %%s)', st.statement ->> 'Sid') ELSE '' END),
                      ', ' ORDER BY st.statement_index) AS open_statements
    FROM iam_audit_statements(ro.assume_role_policy) AS st
    WHERE coalesce(st.statement ->> 'Effect', '') = 'Allow'
      AND coalesce(st.statement -> 'Condition', '{}'::jsonb) IN ('{}'::jsonb, 'null'::jsonb)
      AND (st.statement ? 'NotPrincipal'
           OR st.statement -> 'Principal' = '"*"'::jsonb
           OR (jsonb_typeof(st.statement -> 'Principal') = 'object'
               AND iam_audit_as_array(st.statement -> 'Principal' -> 'AWS') @> '["*"]'::jsonb))
) AS s ON true
{% endcall %}
