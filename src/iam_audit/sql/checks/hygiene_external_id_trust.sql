-- hygiene_external_id_trust · catalogue: sql/catalogue/controls/hygiene_external_id_trust.yaml
-- No role trusts any AWS principal on the strength of an sts:ExternalId alone.
-- Audit: per role, no Allow statement of the trust policy has an open principal
-- (Principal "*", an AWS principal "*" or with a wildcard account, or NotPrincipal)
-- whose only restricting condition is a literal sts:ExternalId
-- (iam_audit_trust_exposures exposure 'external_id_only').
-- DECISION: an external id is a shared secret that the third party's every customer
-- may learn; it keeps the confused deputy out but is no identity. It is a finding of
-- its own, below IH.3 (anyone at all), not a pass. Conditions that bind the caller
-- (aws:PrincipalOrgID, aws:PrincipalAccount of the organisation, ...) clear it, as in
-- IH.3; an ExternalId beside a named outside account is IH.4's finding.
-- DECISION: a role whose trust policy was not collected fails, with a reason saying so.
-- Reads: authorization_details (roles); organization_accounts and accounts.
-- Resource: the role's ARN.
{% from 'macros/check.sql' import check %}
{% call check('hygiene_external_id_trust', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, ro.account_id, ro.arn, 'iam_role',
       CASE WHEN ro.assume_role_policy IS NOT NULL AND s.statements IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN ro.assume_role_policy IS NULL
            THEN format('The trust policy of role %%s was not collected, so it cannot be shown not to rest on an external id alone.',
                        ro.role_name)
            WHEN s.statements IS NULL
            THEN format('Role %%s trusts no wildcard principal on the strength of an sts:ExternalId alone.', ro.role_name)
            ELSE format('Role %%s can be assumed by any AWS account that knows its external id: its trust policy allows %%s with only an sts:ExternalId condition; name the third party''s account or role as the principal and keep the external id.',
                        ro.role_name, s.statements)
       END
FROM controls c
CROSS JOIN ready_accounts r
CROSS JOIN (SELECT iam_audit_organization_account_ids(%(snapshot_date)s::date) AS inside) AS o
JOIN iam_stage.roles ro
  ON ro.snapshot_date = %(snapshot_date)s AND ro.account_id = r.account_id
LEFT JOIN LATERAL (
    SELECT string_agg(format('%%s in statement %%s%%s', e.grantee, e.statement_index,
                             CASE WHEN e.sid IS NOT NULL THEN format(' (Sid %%s)', e.sid) ELSE '' END),
                      ', ' ORDER BY e.statement_index) AS statements
    FROM iam_audit_trust_exposures(ro.assume_role_policy, o.inside || ro.account_id) AS e
    WHERE e.exposure = 'external_id_only'
) AS s ON true
{% endcall %}
