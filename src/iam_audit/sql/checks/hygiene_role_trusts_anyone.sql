-- hygiene_role_trusts_anyone · catalogue: sql/catalogue/controls/hygiene_role_trusts_anyone.yaml
-- No role's trust policy lets anyone outside the organisation assume it.
-- Audit: per role, no Allow statement of the trust policy (iam_stage.roles.assume_role_policy)
-- lets in a caller the organisation does not control (iam_audit_trust_exposures, whose
-- header sets out the model):
--   an open principal (Principal "*", an AWS principal "*" or with a wildcard account
--   such as "arn:aws:iam::*:root", or NotPrincipal) whose conditions do not restrict
--   the caller to the organisation: no Condition, or only keys that do not say who
--   calls (aws:SecureTransport, aws:MultiFactorAuthPresent, aws:SourceIp, ...), or
--   wildcard values (StringLike aws:PrincipalOrgID "*"), or account / ARN tests
--   (aws:PrincipalAccount, aws:SourceAccount, aws:PrincipalArn, aws:SourceArn) naming
--   an account outside the organisation;
--   a federated principal whose tokens the conditions do not bind to your
--   identities (GitHub Actions without a "sub" naming a repository owner, Cognito
--   without "aud", any other OIDC provider without "aud" or "sub"; SAML is bound).
-- Restricting conditions clear the statement: a literal aws:PrincipalOrgID or
-- aws:PrincipalOrgPaths, or account / ARN tests all of whose accounts are the
-- role's own or the organisation's.
-- DECISION: the organisation's own id is not collected, so any literal
-- aws:PrincipalOrgID ("o-abc123") is taken to be it; a wildcard org id restricts nothing.
-- DECISION: an open principal bound only by sts:ExternalId passes here: an external
-- id is a shared secret, not an identity, and is reported at a lower severity by
-- hygiene_external_id_trust.
-- DECISION: "inside the organisation" is iam_stage.organization_accounts of the
-- snapshot, or the audited accounts (iam_stage.accounts) when the organisation was
-- not read, as in hygiene_cross_account_trust. Service principals are never
-- "anyone" (their aws:SourceAccount / SourceArn are judged by IH.4).
-- DECISION: a role whose trust policy was not collected fails, with a reason saying so.
-- Reads: authorization_details (roles); organization_accounts and accounts.
-- Resource: the role's ARN.
{% from 'macros/check.sql' import check %}
{% call check('hygiene_role_trusts_anyone', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, ro.account_id, ro.arn, 'iam_role',
       CASE WHEN ro.assume_role_policy IS NOT NULL AND s.open_statements IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN ro.assume_role_policy IS NULL
            THEN format('The trust policy of role %%s was not collected, so it cannot be shown not to trust any principal.',
                        ro.role_name)
            WHEN s.open_statements IS NULL
            THEN format('Role %%s trusts no wildcard or unbound federated principal that anyone outside the organisation can satisfy.',
                        ro.role_name)
            ELSE format('Role %%s can be assumed from outside the organisation: its trust policy allows %%s; name the trusted principals, or add a condition that binds the caller (aws:PrincipalOrgID, aws:PrincipalAccount of your accounts, or the provider''s sub / aud).',
                        ro.role_name, s.open_statements)
       END
FROM controls c
CROSS JOIN ready_accounts r
CROSS JOIN (SELECT iam_audit_organization_account_ids(%(snapshot_date)s::date) AS inside) AS o
JOIN iam_stage.roles ro
  ON ro.snapshot_date = %(snapshot_date)s AND ro.account_id = r.account_id
LEFT JOIN LATERAL (
    SELECT string_agg(format('%%s in statement %%s%%s %%s', e.grantee, e.statement_index,
                             CASE WHEN e.sid IS NOT NULL THEN format(' (Sid %%s)', e.sid) ELSE '' END,
                             e.detail),
                      ', ' ORDER BY e.statement_index, e.grantee) AS open_statements
    FROM iam_audit_trust_exposures(ro.assume_role_policy, o.inside || ro.account_id) AS e
    WHERE e.exposure = 'anyone'
) AS s ON true
{% endcall %}
