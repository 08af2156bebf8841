-- Per-principal privilege escalation (hygiene_principal_escalation), one row per
-- user, role (service-linked roles excluded) and group of the snapshot, with its
-- status and reason; the check's header sets out the judgement calls.
-- A function so that it can plan without nested loops (SET enable_nestloop = off):
-- the row estimates of its CTEs are poor, and a nested loop over principals x
-- facts grows with the square of the principals; every join here is an equality
-- that hashes, so the cost stays linear in principals x held policies.
CREATE OR REPLACE FUNCTION iam_audit_principal_escalations(p_snapshot_date date)
RETURNS TABLE (account_id text, arn text, resource_type text, status text, reason text)
LANGUAGE sql STABLE SET enable_nestloop = off AS $$
WITH principals AS MATERIALIZED (
    SELECT u.account_id, u.arn, 'user' AS kind, u.user_name AS name, u.permissions_boundary_arn AS boundary_arn
    FROM iam_stage.users u
    WHERE u.snapshot_date = p_snapshot_date
    UNION ALL
    SELECT ro.account_id, ro.arn, 'role', ro.role_name, ro.permissions_boundary_arn
    FROM iam_stage.roles ro
    WHERE ro.snapshot_date = p_snapshot_date AND NOT starts_with(coalesce(ro.path, '/'), '/aws-service-role/')
    UNION ALL
    SELECT g.account_id, g.arn, 'group', g.group_name, NULL
    FROM iam_stage.groups g
    WHERE g.snapshot_date = p_snapshot_date
),
-- the policies each user, role and group holds directly
direct AS (
    SELECT pa.account_id, pa.entity_type, pa.entity_name,
           format('%s policy %s',
                  CASE WHEN mp.is_aws_managed OR pa.policy_arn ~ '^arn:aws[a-z-]*:iam::aws:policy/'
                       THEN 'AWS-managed' ELSE 'customer-managed' END,
                  coalesce(pa.policy_name, mp.policy_name, pa.policy_arn)) AS label,
           mp.document
    FROM iam_stage.policy_attachments pa
    LEFT JOIN iam_stage.managed_policies mp
           ON mp.snapshot_date = pa.snapshot_date AND mp.account_id = pa.account_id AND mp.arn = pa.policy_arn
    WHERE pa.snapshot_date = p_snapshot_date
    UNION ALL
    SELECT ip.account_id, ip.entity_type, ip.entity_name, format('inline policy %s', ip.policy_name), ip.document
    FROM iam_stage.inline_policies ip
    WHERE ip.snapshot_date = p_snapshot_date
),
-- ... and through groups, for users
held AS MATERIALIZED (
    SELECT p.account_id, p.arn, d.label, d.document
    FROM principals p
    JOIN direct d ON d.account_id = p.account_id AND d.entity_type = p.kind AND d.entity_name = p.name
    UNION ALL
    SELECT p.account_id, p.arn, d.label || ' through group ' || gm.group_name, d.document
    FROM principals p
    JOIN iam_stage.group_memberships gm
      ON gm.snapshot_date = p_snapshot_date AND gm.account_id = p.account_id AND gm.user_arn = p.arn
    JOIN direct d ON d.account_id = p.account_id AND d.entity_type = 'group' AND d.entity_name = gm.group_name
    WHERE p.kind = 'user'
),
facts AS MATERIALIZED (
    SELECT x.document, f.*
    FROM (SELECT DISTINCT document FROM held WHERE document IS NOT NULL) AS x
    CROSS JOIN LATERAL iam_audit_document_facts(x.document) AS f
),
boundaries AS MATERIALIZED (
    SELECT p.account_id, p.arn, p.boundary_arn, mp.document,
           (SELECT array_agg(b.action) FROM iam_audit_boundary_allows(mp.document) AS b) AS allows,
           CASE WHEN mp.document IS NOT NULL THEN iam_audit_document_is_full_admin(mp.document) END AS admin
    FROM principals p
    LEFT JOIN iam_stage.managed_policies mp
           ON mp.snapshot_date = p_snapshot_date AND mp.account_id = p.account_id AND mp.arn = p.boundary_arn
    WHERE p.boundary_arn IS NOT NULL
),
principal_facts AS MATERIALIZED (
    SELECT h.account_id, h.arn, h.label, f.kind, f.action, f.self_only, f.passed_to, f.targets
    FROM held h JOIN facts f ON f.document = h.document
),
effective AS (
    SELECT pf.account_id, pf.arn, pf.label, pf.action, pf.self_only, pf.passed_to, pf.targets
    FROM principal_facts pf
    LEFT JOIN boundaries b ON b.account_id = pf.account_id AND b.arn = pf.arn
    WHERE pf.kind = 'allow'
      AND NOT EXISTS (SELECT 1 FROM principal_facts d
                      WHERE d.account_id = pf.account_id AND d.arn = pf.arn AND d.kind = 'deny' AND d.action = pf.action)
      AND (b.document IS NULL OR pf.action = ANY (b.allows))
),
-- one row per (rule, group, action): actions join by equality (a hash join)
rule_actions AS (
    SELECT r.rule, r.ord, r.passed_to, r.self_ok, r.needs_deny, g.idx, a.action,
           jsonb_array_length(r.requires) AS n_groups
    FROM iam_audit_escalation_rules() WITH ORDINALITY AS r(rule, requires, passed_to, self_ok, needs_deny, ord)
    CROSS JOIN LATERAL jsonb_array_elements(r.requires) WITH ORDINALITY AS g(actions, idx)
    CROSS JOIN LATERAL jsonb_array_elements_text(g.actions) AS a(action)
),
usable_all AS (
    SELECT DISTINCT e.account_id, e.arn, rg.rule, rg.ord, rg.n_groups, rg.needs_deny, rg.idx, e.action, e.label,
           e.targets
    FROM effective e
    JOIN rule_actions rg
      ON rg.action = e.action
     AND iam_audit_counts_for_rule(e.action, e.self_only, e.passed_to, rg.passed_to, rg.self_ok)
),
deny_holders AS (
    SELECT DISTINCT account_id, arn FROM principal_facts WHERE kind = 'has_deny'
),
-- first pass: every iam:PassRole counts, whatever roles it names
met_all AS (
    SELECT u.account_id, u.arn, u.rule
    FROM usable_all u
    LEFT JOIN deny_holders dh ON dh.account_id = u.account_id AND dh.arn = u.arn
    GROUP BY u.account_id, u.arn, u.rule, u.n_groups, u.needs_deny, dh.arn
    HAVING count(DISTINCT u.idx) = u.n_groups AND (NOT u.needs_deny OR dh.arn IS NOT NULL)
),
-- roles that are worth passing: administrators, roles that can escalate themselves,
-- and roles holding policies whose documents were not collected
privileged AS (
    SELECT DISTINCT arn FROM met_all
    UNION
    SELECT pf.arn FROM principal_facts pf WHERE pf.kind = 'admin'
    UNION
    SELECT arn FROM held WHERE document IS NULL
),
known_roles AS (
    SELECT arn FROM principals WHERE kind = 'role'
),
-- second pass: an iam:PassRole limited to named roles, every one of them known and
-- not privileged, passes nothing worth having
usable AS (
    SELECT u.*
    FROM usable_all u
    WHERE NOT (u.action = 'iam:PassRole' AND u.targets IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM unnest(u.targets) AS t(role_arn)
                               WHERE t.role_arn IN (SELECT arn FROM privileged)
                                  OR t.role_arn NOT IN (SELECT arn FROM known_roles)))
),
met AS (
    SELECT u.account_id, u.arn, u.rule, u.ord,
           -- "iam:PassRole from customer-managed policy x, ec2:RunInstances from AWS-managed policy y"
           string_agg(DISTINCT format('%s from %s', u.action, u.label), ', '
                      ORDER BY format('%s from %s', u.action, u.label)) AS grants
    FROM usable u
    LEFT JOIN deny_holders dh ON dh.account_id = u.account_id AND dh.arn = u.arn
    GROUP BY u.account_id, u.arn, u.rule, u.ord, u.n_groups, u.needs_deny, dh.arn
    HAVING count(DISTINCT u.idx) = u.n_groups AND (NOT u.needs_deny OR dh.arn IS NOT NULL)
),
-- the principals a limited iam:PassRole cleared, and the roles it is limited to
cleared AS (
    SELECT u.account_id, u.arn,
           string_agg(DISTINCT t.role_arn, ', ' ORDER BY t.role_arn) AS roles
    FROM usable_all u
    CROSS JOIN LATERAL unnest(u.targets) AS t(role_arn)
    WHERE u.action = 'iam:PassRole'
      AND EXISTS (SELECT 1 FROM met_all m WHERE m.account_id = u.account_id AND m.arn = u.arn AND m.rule = u.rule)
      AND NOT EXISTS (SELECT 1 FROM met m WHERE m.account_id = u.account_id AND m.arn = u.arn AND m.rule = u.rule)
    GROUP BY u.account_id, u.arn
),
findings AS (
    SELECT account_id, arn, string_agg(format('%s (%s)', rule, grants), '; ' ORDER BY ord) AS paths
    FROM met
    GROUP BY account_id, arn
),
admins AS (
    SELECT pf.account_id, pf.arn, string_agg(DISTINCT pf.label, ', ' ORDER BY pf.label) AS grants
    FROM principal_facts pf
    LEFT JOIN boundaries b ON b.account_id = pf.account_id AND b.arn = pf.arn
    WHERE pf.kind = 'admin' AND (b.document IS NULL OR b.admin)
    GROUP BY pf.account_id, pf.arn
),
unknown AS (
    SELECT account_id, arn, string_agg(DISTINCT label, ', ' ORDER BY label) AS labels
    FROM held
    WHERE document IS NULL
    GROUP BY account_id, arn
)
SELECT p.account_id, p.arn, 'iam_' || p.kind,
       CASE WHEN ad.grants IS NOT NULL AND un.labels IS NULL THEN 'pass'
            WHEN fi.paths IS NULL AND un.labels IS NULL THEN 'pass'
            ELSE 'fail' END,
       CASE WHEN ad.grants IS NOT NULL AND un.labels IS NULL
            THEN format('%s %s holds administrator rights ("*:*" through %s), so it has nothing to escalate to; administrators are reported by the full-admin and MFA controls.',
                        initcap(p.kind), p.name, ad.grants)
            WHEN fi.paths IS NOT NULL
            THEN format('%s %s can escalate its privileges through the policies it holds: %s.%s%s Remove an action of each path, or restrict it to the resources and services that need it.',
                        initcap(p.kind), p.name, fi.paths,
                        CASE WHEN un.labels IS NOT NULL
                             THEN format(' The documents of %s were not collected.', un.labels) ELSE '' END,
                        CASE WHEN b.boundary_arn IS NOT NULL AND b.document IS NULL
                             THEN format(' Its permissions boundary %s was not collected, so it limits nothing here.', b.boundary_arn)
                             ELSE '' END)
            WHEN un.labels IS NOT NULL
            THEN format('%s %s holds policies whose documents were not collected (%s), so it cannot be shown to be unable to escalate its privileges.',
                        initcap(p.kind), p.name, un.labels)
            ELSE format('%s %s cannot escalate its privileges through the known paths with the policies it holds%s%s.',
                        initcap(p.kind), p.name,
                        CASE WHEN b.boundary_arn IS NOT NULL AND b.document IS NOT NULL
                             THEN format(' within its permissions boundary %s', b.boundary_arn) ELSE '' END,
                        CASE WHEN cl.roles IS NOT NULL
                             THEN format('; its iam:PassRole is limited to %s, which can neither administer nor escalate',
                                         cl.roles) ELSE '' END)
       END
FROM principals p
LEFT JOIN findings fi ON fi.account_id = p.account_id AND fi.arn = p.arn
LEFT JOIN admins ad ON ad.account_id = p.account_id AND ad.arn = p.arn
LEFT JOIN unknown un ON un.account_id = p.account_id AND un.arn = p.arn
LEFT JOIN boundaries b ON b.account_id = p.account_id AND b.arn = p.arn
LEFT JOIN cleared cl ON cl.account_id = p.account_id AND cl.arn = p.arn
$$;
