-- Trust-policy evaluation shared by the iam_hygiene trust checks (who outside the
-- organisation can satisfy a role's trust policy). IMMUTABLE functions of their
-- arguments, created with CREATE OR REPLACE.
--
-- The model, per Allow statement of a trust policy:
--   * An open principal lets any AWS caller in: Principal "*", an AWS principal "*"
--     or one with a wildcard account ("arn:aws:iam::*:root"), or NotPrincipal.
--   * A federated principal lets in whoever holds a token of the provider, unless the
--     conditions bind the token to your identities: GitHub Actions
--     (token.actions.githubusercontent.com) needs a "<provider>:sub" that names a
--     repository owner (every GitHub repository gets tokens with the same aud);
--     Cognito (cognito-identity.amazonaws.com) needs "<provider>:aud" (the identity
--     pool); every other OIDC or web-identity provider needs "<provider>:aud" or
--     "<provider>:sub". SAML providers are your own identity provider and are bound.
--   * A condition restricts the caller when it is a positive test (StringEquals,
--     StringLike, ArnEquals, ArnLike, with or without ForAnyValue:, never ...IfExists,
--     never a negated or ForAllValues: operator, both of which hold when the key is
--     absent) of a key that names who calls, with values free of wildcards where the
--     identity sits: aws:PrincipalOrgID (any literal organisation id: the
--     organisation's own id is not collected, so a literal id is taken to be it),
--     aws:PrincipalOrgPaths ("o-xxx/..."), aws:PrincipalAccount, aws:SourceAccount,
--     aws:SourceOwner (12-digit ids), aws:PrincipalArn, aws:SourceArn (ARNs with a
--     12-digit account). Conditions of one statement are ANDed: one restricting test
--     is enough.
--   * Keys that do not say who calls never restrict: aws:SecureTransport,
--     aws:MultiFactorAuthPresent, aws:SourceIp, aws:SourceVpc(e), aws:RequestTag, ...;
--     nor does a wildcard org id (StringLike aws:PrincipalOrgID "*").
--   * sts:ExternalId alone is a shared secret, not an identity: a statement whose
--     only binding is an ExternalId is reported apart (exposure 'external_id_only').

-- iam_audit_condition_values and iam_audit_positive_operator live in
-- 030_policy_functions.sql (the escalation rules read iam:PassedToService with them).

-- For one statement, the accounts its conditions restrict the caller to, and whether
-- they restrict it to the organisation, to accounts, or by ExternalId only:
--   org_bound:       a literal aws:PrincipalOrgID or aws:PrincipalOrgPaths test;
--   accounts:        the 12-digit accounts named by account or ARN tests (NULL: none);
--   external_id:     a literal sts:ExternalId test;
--   other_keys:      the condition keys that restrict nothing, for reasons.
-- A key restricts only when every one of its values is literal where the identity
-- sits (no "*" or "?" in the org id, the account id or the ARN's account).
CREATE OR REPLACE FUNCTION iam_audit_trust_conditions(statement jsonb)
RETURNS TABLE (org_bound boolean, accounts text[], external_id boolean, other_keys text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH tests AS (
        SELECT lower(c.condition_key) AS k, c.condition_key AS key_as_written,
               iam_audit_positive_operator(c.operator) AS positive,
               bool_and(CASE lower(c.condition_key)
                   WHEN 'aws:principalorgid' THEN c.value ~ '^o-[a-z0-9]+$'
                   WHEN 'aws:principalorgpaths' THEN c.value ~ '^o-[a-z0-9]+/'
                   WHEN 'aws:principalaccount' THEN c.value ~ '^[0-9]{12}$'
                   WHEN 'aws:sourceaccount' THEN c.value ~ '^[0-9]{12}$'
                   WHEN 'aws:sourceowner' THEN c.value ~ '^[0-9]{12}$'
                   WHEN 'aws:principalarn' THEN c.value ~ '^arn:[^:*?]+:[^:]*:[^:]*:[0-9]{12}:'
                   WHEN 'aws:sourcearn' THEN c.value ~ '^arn:[^:*?]+:[^:]*:[^:]*:[0-9]{12}:'
                   WHEN 'sts:externalid' THEN c.value !~ '[*?]' AND c.value <> ''
                   ELSE false END) AS literal,
               array_agg(DISTINCT coalesce(substring(c.value FROM '^([0-9]{12})$'),
                                           substring(c.value FROM '^arn:[^:]+:[^:]*:[^:]*:([0-9]{12}):')))
                   AS named
        FROM iam_audit_condition_values(statement) AS c
        -- the values of one (operator, key) are ORed: every one must be literal
        GROUP BY c.operator, c.condition_key
    ),
    restricting AS (
        SELECT * FROM tests WHERE positive AND literal
    )
    SELECT EXISTS (SELECT 1 FROM restricting WHERE k IN ('aws:principalorgid', 'aws:principalorgpaths')),
           (SELECT array_agg(DISTINCT a ORDER BY a)
            FROM restricting r CROSS JOIN LATERAL unnest(r.named) AS a
            WHERE r.k IN ('aws:principalaccount', 'aws:sourceaccount', 'aws:sourceowner',
                          'aws:principalarn', 'aws:sourcearn') AND a IS NOT NULL),
           EXISTS (SELECT 1 FROM restricting WHERE k = 'sts:externalid'),
           (SELECT string_agg(DISTINCT t.key_as_written, ', ' ORDER BY t.key_as_written)
            FROM tests t WHERE NOT (t.positive AND t.literal))
$$;

-- True when a federated provider's tokens are bound to your identities: a SAML
-- provider (your own identity provider), or a positive test of the provider's
-- binding claim ("<provider host/path>:sub" for GitHub Actions, ":aud" for Cognito,
-- ":aud" or ":sub" for any other provider) every value of which is literal (for
-- GitHub's sub: names a repository owner, "repo:octo-org/..."). A test with "*"
-- among its values (the values of one key are ORed) binds nothing.
CREATE OR REPLACE FUNCTION iam_audit_federation_bound(statement jsonb, provider text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH p AS (
        SELECT lower(coalesce(substring(provider FROM 'oidc-provider/(.*)$'), provider)) AS host
    ),
    binding AS (
        SELECT c.condition_key,
               bool_and(CASE WHEN p.host = 'token.actions.githubusercontent.com'
                             THEN c.value ~ '^repo:[^*?/]+/'
                             ELSE c.value !~ '[*?]' AND c.value <> '' END) AS literal
        FROM p CROSS JOIN iam_audit_condition_values(statement) AS c
        WHERE iam_audit_positive_operator(c.operator)
          AND lower(c.condition_key) = ANY (CASE
                  WHEN p.host = 'token.actions.githubusercontent.com' THEN ARRAY[p.host || ':sub']
                  WHEN p.host = 'cognito-identity.amazonaws.com' THEN ARRAY[p.host || ':aud']
                  ELSE ARRAY[p.host || ':aud', p.host || ':sub'] END)
        GROUP BY c.condition_key, c.operator
    )
    SELECT provider ~ ':saml-provider/'
        -- tests of one statement are ANDed: one test whose every value binds is enough
        OR EXISTS (SELECT 1 FROM binding WHERE literal)
$$;

-- Who outside a set of accounts can satisfy a trust policy, one row per Allow
-- statement that lets in more than named principals:
--   exposure 'anyone':           an open or unbound federated principal with no
--                                restricting condition (or conditions that bind
--                                only to accounts outside `inside`);
--   exposure 'external_id_only': an open principal bound only by sts:ExternalId;
--   grantee:                     how the statement names the principal, for reasons;
--   detail:                      what the conditions do and do not restrict;
--   outside_accounts:            accounts the conditions name outside `inside`.
-- `inside`: the organisation's accounts (with the role's own).
CREATE OR REPLACE FUNCTION iam_audit_trust_exposures(trust jsonb, inside text[])
RETURNS TABLE (statement_index integer, sid text, exposure text, grantee text, detail text,
               outside_accounts text[])
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH st AS (
        SELECT s.statement_index, s.statement
        FROM iam_audit_statements(trust) AS s
        WHERE jsonb_typeof(s.statement) = 'object' AND coalesce(s.statement ->> 'Effect', '') = 'Allow'
    ),
    grantees AS (
        -- open AWS principals
        SELECT st.statement_index, st.statement, 'aws' AS kind,
               CASE WHEN st.statement ? 'NotPrincipal' THEN 'NotPrincipal'
                    WHEN st.statement -> 'Principal' = '"*"'::jsonb THEN 'Principal "*"'
                    ELSE format('Principal {"AWS": %s}', (
                        SELECT string_agg(to_jsonb(p.principal)::text, ', ' ORDER BY p.principal)
                        FROM jsonb_array_elements_text(iam_audit_as_array(st.statement -> 'Principal' -> 'AWS')) AS p(principal)
                        WHERE p.principal = '*' OR p.principal ~ '^arn:[^:]+:(iam|sts)::[^:]*[*?]')) END AS grantee
        FROM st
        WHERE st.statement ? 'NotPrincipal'
           OR st.statement -> 'Principal' = '"*"'::jsonb
           OR (jsonb_typeof(st.statement -> 'Principal') = 'object'
               AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(iam_audit_as_array(st.statement -> 'Principal' -> 'AWS')) AS p(principal)
                           WHERE p.principal = '*' OR p.principal ~ '^arn:[^:]+:(iam|sts)::[^:]*[*?]'))
        UNION ALL
        -- federated providers whose tokens the conditions do not bind
        SELECT st.statement_index, st.statement, 'federated', format('Principal {"Federated": "%s"}', f.provider)
        FROM st
        CROSS JOIN LATERAL jsonb_array_elements_text(iam_audit_as_array(
            CASE WHEN jsonb_typeof(st.statement -> 'Principal') = 'object' THEN st.statement -> 'Principal' -> 'Federated' END)) AS f(provider)
        WHERE NOT iam_audit_federation_bound(st.statement, f.provider)
    ),
    judged AS (
        SELECT g.statement_index, g.statement ->> 'Sid' AS sid, g.kind, g.grantee,
               coalesce(c.org_bound, false) AS org_bound, c.accounts,
               coalesce(c.external_id, false) AS external_id, c.other_keys,
               (SELECT array_agg(a ORDER BY a) FROM unnest(c.accounts) AS a WHERE NOT a = ANY (inside)) AS outside
        FROM grantees g
        LEFT JOIN LATERAL iam_audit_trust_conditions(g.statement) AS c ON true
    )
    SELECT j.statement_index, j.sid,
           CASE WHEN j.kind = 'aws' AND j.external_id AND j.accounts IS NULL THEN 'external_id_only' ELSE 'anyone' END,
           j.grantee,
           CASE WHEN j.kind = 'federated'
                THEN 'with no condition binding the provider''s tokens to your identities'
                     || coalesce(format(' (conditions on %s do not)', j.other_keys), '')
                WHEN j.accounts IS NOT NULL
                THEN format('whose conditions admit account%s %s outside the organisation',
                            CASE WHEN cardinality(j.outside) > 1 THEN 's' ELSE '' END,
                            array_to_string(j.outside, ', '))
                WHEN j.external_id
                THEN 'with only an sts:ExternalId condition between it and any AWS account'
                WHEN j.other_keys IS NOT NULL
                THEN format('whose conditions (%s) do not restrict who calls', j.other_keys)
                ELSE 'without a Condition'
           END,
           j.outside
    FROM judged j
    WHERE j.kind = 'federated'
       OR (NOT j.org_bound AND (j.accounts IS NULL OR j.outside IS NOT NULL))
$$;
