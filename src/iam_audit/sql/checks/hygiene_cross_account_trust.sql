-- hygiene_cross_account_trust · catalogue: sql/catalogue/controls/hygiene_cross_account_trust.yaml
-- Roles trust only AWS accounts of the organisation.
-- Audit: per role, every AWS principal of the trust policy's Allow statements
-- (Principal {"AWS": ...}, a string or a list) that names an account
-- (arn:...:iam::<id>:root, :role/..., :user/..., arn:...:sts::<id>:..., or a bare
-- 12-digit id; iam_audit_principal_account) must name the role's own account or an
-- account of the organisation.
-- The organisation is iam_stage.organization_accounts of the snapshot.
-- DECISION: when that table has no rows for the snapshot (Organizations not readable,
-- or an older snapshot), the snapshot's audited accounts (iam_stage.accounts) stand in
-- for it, and every reason says so.
-- Accounts named only inside conditions count as trusted too: in every Allow
-- statement, the 12-digit accounts of positive, literal aws:PrincipalAccount,
-- aws:SourceAccount, aws:SourceOwner, aws:PrincipalArn and aws:SourceArn tests
-- (iam_audit_trust_conditions), so Principal {"AWS": "*"} limited to an outside
-- account by aws:PrincipalAccount, or a service principal acting for an outside
-- account's resources (aws:SourceAccount), fails here.
-- DECISION: other conditions (sts:ExternalId, aws:PrincipalOrgID, ...) do not change
-- the verdict: the trust in an outside account exists and must be reviewed. Principal
-- "*" and wildcard accounts name no account and are reported by
-- hygiene_role_trusts_anyone; Federated principals, unique ids (AROA..., AIDA...: the
-- trusted entity was deleted) and Deny statements are not evaluated here.
-- DECISION: a role whose trust policy was not collected fails, with a reason saying so.
-- Reads: authorization_details (roles); organization_accounts and accounts (loaded
-- for every snapshot, not a data set of an account). Resource: the role's ARN.
{% from 'macros/check.sql' import check %}
{% call check('hygiene_cross_account_trust', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, ro.account_id, ro.arn, 'iam_role',
       CASE WHEN ro.assume_role_policy IS NOT NULL AND t.outside IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN ro.assume_role_policy IS NULL
            THEN format('The trust policy of role %%s was not collected, so it cannot be shown to trust only accounts of the organisation.',
                        ro.role_name)
            WHEN t.outside IS NULL
            THEN format('Role %%s trusts no AWS account outside %%s.', ro.role_name,
                        CASE WHEN o.org_known THEN 'the organisation'
                             ELSE 'the audited accounts (the organisation''s account list is not available for this snapshot, so the audited accounts stand in for it)' END)
            ELSE format('Role %%s trusts AWS account%%s %%s outside %%s; remove %%s from the trust policy or review the third party and require an sts:ExternalId condition.',
                        ro.role_name, CASE WHEN t.n > 1 THEN 's' ELSE '' END, t.outside,
                        CASE WHEN o.org_known THEN 'the organisation'
                             ELSE 'the audited accounts (the organisation''s account list is not available for this snapshot, so the audited accounts stand in for it)' END,
                        CASE WHEN t.n > 1 THEN 'them' ELSE 'it' END)
       END
FROM controls c
CROSS JOIN ready_accounts r
CROSS JOIN (
    SELECT EXISTS (SELECT 1 FROM iam_stage.organization_accounts
                   WHERE snapshot_date = %(snapshot_date)s) AS org_known
) AS o
JOIN iam_stage.roles ro
  ON ro.snapshot_date = %(snapshot_date)s AND ro.account_id = r.account_id
LEFT JOIN LATERAL (
    SELECT string_agg(x.trusted, ', ' ORDER BY x.trusted) AS outside, count(*) AS n
    FROM (
        SELECT DISTINCT iam_audit_principal_account(p.principal) AS trusted
        FROM iam_audit_statements(ro.assume_role_policy) AS st
        CROSS JOIN LATERAL jsonb_array_elements_text(iam_audit_as_array(
            CASE WHEN jsonb_typeof(st.statement -> 'Principal') = 'object'
                 THEN st.statement -> 'Principal' -> 'AWS' END)) AS p(principal)
        WHERE coalesce(st.statement ->> 'Effect', '') = 'Allow'
        UNION
        SELECT DISTINCT a.account
        FROM iam_audit_statements(ro.assume_role_policy) AS st
        CROSS JOIN LATERAL iam_audit_trust_conditions(st.statement) AS tc
        CROSS JOIN LATERAL unnest(tc.accounts) AS a(account)
        WHERE jsonb_typeof(st.statement) = 'object' AND coalesce(st.statement ->> 'Effect', '') = 'Allow'
    ) AS x
    WHERE x.trusted IS NOT NULL
      AND x.trusted <> ro.account_id
      AND NOT CASE WHEN o.org_known
                   THEN EXISTS (SELECT 1 FROM iam_stage.organization_accounts oa
                                WHERE oa.snapshot_date = %(snapshot_date)s AND oa.account_id = x.trusted)
                   ELSE EXISTS (SELECT 1 FROM iam_stage.accounts a
                                WHERE a.snapshot_date = %(snapshot_date)s AND a.account_id = x.trusted)
              END
    HAVING count(*) > 0
) AS t ON true
{% endcall %}
