-- aws_policy_manual_evidence: for controls a person must assess (logic NULL in
-- aws_policy_controls), the organisation facts their audit procedure reads, one row per
-- fact, per snapshot date whose organisation data sets were loaded. Never a verdict:
-- `attention` marks a fact the assessor should look at first (an account with no SCP
-- beyond FullAWSAccess, root credentials management off, no delegated administrator), and
-- a data set that could not be collected is one row saying so, with attention.
-- A framework file maps a manual control to kinds of evidence (`evidence:` in
-- sql/catalogue/frameworks/*.yaml, stored as params.evidence):
--   root_access_management           iam:ListOrganizationsFeatures, IAM's delegated administrator
--   guardrail_policies               per member account, the SCPs and RCPs attached to it, its OUs
--                                    and the root (the management account is exempt from SCPs and RCPs)
--   ou_structure                     per account, its OU path
--   organizations_delegation_policy  the principals of the Organizations delegation policy
--   delegated_administrators         per delegated administrator account, its service principals
CREATE OR REPLACE VIEW aws_policy_manual_evidence AS
WITH RECURSIVE up (snapshot_date, account_id, node_id, depth) AS (
    SELECT p.snapshot_date, p.child_id, p.child_id, 0
    FROM iam_stage.organization_parents p
    WHERE p.child_type = 'ACCOUNT'
    UNION ALL
    SELECT u.snapshot_date, u.account_id, p.parent_id, u.depth + 1
    FROM up u
    JOIN iam_stage.organization_parents p ON p.snapshot_date = u.snapshot_date AND p.child_id = u.node_id
    WHERE p.parent_id IS NOT NULL AND u.depth < 10
),
ds AS (
    SELECT snapshot_date, dataset, status = 'ok' AS ok,
           format('not collected: %s%s', coalesce(error_code, 'unknown error'),
                  coalesce(': ' || left(error_message, 300), '')) AS problem
    FROM iam_stage.organization_datasets
),
names AS (
    SELECT snapshot_date, child_id, child_type, coalesce(child_name, child_id) AS name, parent_id
    FROM iam_stage.organization_parents
),
members AS (
    SELECT n.snapshot_date, n.child_id AS account_id, n.name AS account_name, n.parent_id,
           n.child_id IS NOT DISTINCT FROM i.management_account_id AS is_management
    FROM names n
    LEFT JOIN iam_stage.organization_info i ON i.snapshot_date = n.snapshot_date
    WHERE n.child_type = 'ACCOUNT'
),
effective AS (  -- every SCP and RCP applying to an account, with where it is attached (an AWS-managed
                -- FullAWSAccess, attached everywhere by default, is then named once, after the guardrails)
    SELECT u.snapshot_date, u.account_id, p.policy_type, p.policy_name, p.aws_managed,
           CASE WHEN u.depth = 0 THEN 'the account' ELSE coalesce(n.name, u.node_id) END AS attached_at, u.depth
    FROM up u
    JOIN iam_stage.organization_policy_targets t ON t.snapshot_date = u.snapshot_date AND t.target_id = u.node_id
    JOIN iam_stage.organization_policies p ON p.snapshot_date = t.snapshot_date AND p.policy_id = t.policy_id
    LEFT JOIN names n ON n.snapshot_date = u.snapshot_date AND n.child_id = u.node_id
),
evidence (snapshot_date, evidence, account_id, account_name, subject, detail, attention, source) AS (
    -- root_access_management
    SELECT d.snapshot_date, 'root_access_management', i.management_account_id, NULL::text,
           coalesce(f.organization_id, i.organization_id, 'the organisation'),
           CASE WHEN NOT d.ok THEN d.problem
                ELSE format('root credentials management %s; privileged root actions %s',
                            CASE WHEN f.rcm THEN 'enabled' ELSE 'not enabled' END,
                            CASE WHEN f.sessions THEN 'enabled' ELSE 'not enabled' END) END,
           NOT d.ok OR NOT coalesce(f.rcm, false),
           'iam:ListOrganizationsFeatures'
    FROM ds d
    LEFT JOIN (SELECT snapshot_date, max(organization_id) AS organization_id,
                      coalesce(bool_or(feature = 'RootCredentialsManagement'), false) AS rcm,
                      coalesce(bool_or(feature = 'RootSessions'), false) AS sessions
               FROM iam_stage.organization_features GROUP BY snapshot_date) f ON f.snapshot_date = d.snapshot_date
    LEFT JOIN iam_stage.organization_info i ON i.snapshot_date = d.snapshot_date
    WHERE d.dataset = 'organization_features'
    UNION ALL
    SELECT d.snapshot_date, 'root_access_management', a.account_id, a.account_name,
           'delegated administrator for iam.amazonaws.com',
           CASE WHEN NOT d.ok THEN d.problem
                WHEN a.account_id IS NULL THEN 'none: root access is managed from the management account'
                ELSE format('account %s (%s)', a.account_id, coalesce(a.account_name, 'no name')) END,
           NOT d.ok, 'organizations:ListDelegatedAdministrators'
    FROM ds d
    LEFT JOIN iam_stage.organization_delegated_admins a
           ON a.snapshot_date = d.snapshot_date AND a.service_principal = 'iam.amazonaws.com'
    WHERE d.dataset = 'organization_delegated_admins'
    UNION ALL
    -- guardrail_policies: member accounts only (SCPs and RCPs never apply to the management account)
    SELECT m.snapshot_date, 'guardrail_policies', m.account_id, m.account_name, 'SCPs and RCPs in effect',
           format('SCPs: %s; RCPs: %s',
                  coalesce((SELECT string_agg(x.item, ', ' ORDER BY x.managed, x.depth, x.item)
                            FROM (SELECT e.aws_managed IS TRUE AS managed, min(e.depth) AS depth,
                                         CASE WHEN e.aws_managed IS TRUE THEN e.policy_name || ' (AWS-managed)'
                                              ELSE format('%s (at %s)', e.policy_name, e.attached_at) END AS item
                                  FROM effective e WHERE e.snapshot_date = m.snapshot_date
                                    AND e.account_id = m.account_id AND e.policy_type = 'SERVICE_CONTROL_POLICY'
                                  GROUP BY 1, 3) x),
                           'none'),
                  coalesce((SELECT string_agg(x.item, ', ' ORDER BY x.managed, x.depth, x.item)
                            FROM (SELECT e.aws_managed IS TRUE AS managed, min(e.depth) AS depth,
                                         CASE WHEN e.aws_managed IS TRUE THEN e.policy_name || ' (AWS-managed)'
                                              ELSE format('%s (at %s)', e.policy_name, e.attached_at) END AS item
                                  FROM effective e WHERE e.snapshot_date = m.snapshot_date
                                    AND e.account_id = m.account_id AND e.policy_type = 'RESOURCE_CONTROL_POLICY'
                                  GROUP BY 1, 3) x),
                           'none'))
           || CASE WHEN NOT EXISTS (SELECT 1 FROM effective e WHERE e.snapshot_date = m.snapshot_date
                                      AND e.account_id = m.account_id AND e.policy_type = 'SERVICE_CONTROL_POLICY'
                                      AND e.aws_managed IS NOT TRUE)
                   THEN ' - no SCP beyond FullAWSAccess applies to this account' ELSE '' END,
           NOT EXISTS (SELECT 1 FROM effective e WHERE e.snapshot_date = m.snapshot_date
                         AND e.account_id = m.account_id AND e.policy_type = 'SERVICE_CONTROL_POLICY'
                         AND e.aws_managed IS NOT TRUE),
           'organizations:ListPolicies, ListTargetsForPolicy'
    FROM members m
    JOIN ds p ON p.snapshot_date = m.snapshot_date AND p.dataset = 'organization_policies' AND p.ok
    WHERE NOT m.is_management
    UNION ALL
    SELECT d.snapshot_date, 'guardrail_policies', NULL, NULL, 'SCPs and RCPs', d.problem, true,
           'organizations:ListPolicies, ListTargetsForPolicy'
    FROM ds d
    WHERE d.dataset = 'organization_policies' AND NOT d.ok
    UNION ALL
    -- ou_structure
    SELECT m.snapshot_date, 'ou_structure', m.account_id, m.account_name, 'OU path',
           coalesce((SELECT string_agg(n.name, ' / ' ORDER BY u.depth DESC)
                     FROM up u JOIN names n ON n.snapshot_date = u.snapshot_date AND n.child_id = u.node_id
                     WHERE u.snapshot_date = m.snapshot_date AND u.account_id = m.account_id AND u.depth > 0),
                    '(no parent recorded)')
           || CASE WHEN m.is_management THEN ' (management account)' ELSE '' END,
           NOT m.is_management AND EXISTS (SELECT 1 FROM names r WHERE r.snapshot_date = m.snapshot_date
                                              AND r.child_id = m.parent_id AND r.child_type = 'ROOT'),
           'organizations:ListOrganizationalUnitsForParent, ListAccountsForParent'
    FROM members m
    UNION ALL
    SELECT d.snapshot_date, 'ou_structure', NULL, NULL, 'OU tree', d.problem, true,
           'organizations:ListOrganizationalUnitsForParent, ListAccountsForParent'
    FROM ds d
    WHERE d.dataset = 'organization_units' AND NOT d.ok
    UNION ALL
    -- organizations_delegation_policy
    SELECT d.snapshot_date, 'organizations_delegation_policy', substring(p.principal FROM '([0-9]{12})'), NULL,
           'Organizations delegation policy',
           CASE WHEN NOT d.ok THEN d.problem
                WHEN p.principal IS NULL THEN 'none: Organizations policies are managed from the management account'
                ELSE format('delegates to %s', p.principal) END,
           NOT d.ok OR p.principal IS NULL, 'organizations:DescribeResourcePolicy'
    FROM ds d
    LEFT JOIN iam_stage.organization_delegation_policy p ON p.snapshot_date = d.snapshot_date
    WHERE d.dataset = 'organization_delegated_admins'
    UNION ALL
    -- delegated_administrators
    SELECT d.snapshot_date, 'delegated_administrators', a.account_id, a.account_name,
           coalesce(a.service_principal, 'delegated administrators'),
           CASE WHEN NOT d.ok THEN d.problem
                WHEN a.account_id IS NULL THEN 'none registered: integrated services are administered from the management account'
                ELSE format('account %s (%s) administers %s since %s', a.account_id, coalesce(a.account_name, 'no name'),
                            a.service_principal, coalesce(to_char(a.delegation_enabled_date AT TIME ZONE 'UTC',
                                                                  'YYYY-MM-DD'), 'an unknown date')) END,
           NOT d.ok OR a.account_id IS NULL,
           'organizations:ListDelegatedAdministrators, ListDelegatedServicesForAccount'
    FROM ds d
    LEFT JOIN iam_stage.organization_delegated_admins a ON a.snapshot_date = d.snapshot_date
    WHERE d.dataset = 'organization_delegated_admins'
)
SELECT e.snapshot_date, c.framework, c.check_id, c.title, e.evidence, e.account_id, e.account_name,
       e.subject, e.detail, e.attention, e.source
FROM aws_policy_controls c
CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(c.params -> 'evidence') = 'array'
                                                  THEN c.params -> 'evidence' ELSE '[]'::jsonb END) AS k (kind)
JOIN evidence e ON e.evidence = k.kind
WHERE c.logic IS NULL;
