-- Policy-document evaluation shared by the iam_hygiene checks. Every function is an
-- IMMUTABLE SQL function of its arguments (no table access) and is created with
-- CREATE OR REPLACE, so applying the schema twice is harmless.
--
-- Scope of the evaluation (what IAM does that these functions do and do not model):
--   * Allow statements grant through Action (any pattern matches) or NotAction
--     (every action that none of its patterns matches).
--   * Patterns are IAM wildcards, matched case-insensitively: "*" any run of
--     characters, "?" exactly one character.
--   * Resource, NotResource and Condition of an Allow statement are ignored: an
--     action allowed on some resource or under some condition counts as allowed.
--   * A Deny statement removes an action only when it applies everywhere: Resource
--     contains "*", no NotResource and no (non-empty) Condition. A Deny on narrower
--     resources or under a condition still leaves the action allowed somewhere, so
--     it removes nothing (conservative: a finding is never hidden by a partial Deny).
--   * Only the one document is evaluated: permissions boundaries, SCPs, session
--     policies and other policies of the same principal are out of scope.

-- True when an IAM action pattern matches an action, case-insensitively.
CREATE OR REPLACE FUNCTION iam_audit_action_matches(pattern text, action text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(action) LIKE
           replace(replace(replace(replace(replace(lower(pattern),
               '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_')
           ESCAPE '\'
$$;

-- True when any pattern of a JSON string-or-array of patterns matches the action.
CREATE OR REPLACE FUNCTION iam_audit_any_pattern_matches(patterns jsonb, action text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1
        FROM jsonb_array_elements(iam_audit_as_array(patterns)) AS p(pattern)
        WHERE jsonb_typeof(p.pattern) = 'string'
          AND iam_audit_action_matches(p.pattern #>> '{}', action)
    )
$$;

-- True when a statement's Action / NotAction covers the action (Effect not considered).
CREATE OR REPLACE FUNCTION iam_audit_statement_covers(statement jsonb, action text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN jsonb_typeof(statement) <> 'object' THEN false
        WHEN statement ? 'Action' THEN iam_audit_any_pattern_matches(statement -> 'Action', action)
        WHEN statement ? 'NotAction' THEN NOT iam_audit_any_pattern_matches(statement -> 'NotAction', action)
        ELSE false
    END
$$;

-- True when a statement allows the action (Effect Allow; resources and conditions ignored).
CREATE OR REPLACE FUNCTION iam_audit_statement_allows(statement jsonb, action text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(statement ->> 'Effect', '') = 'Allow'
       AND iam_audit_statement_covers(statement, action)
$$;

-- True when a statement denies the action on every resource without condition:
-- Effect Deny, Resource containing "*", no NotResource, no non-empty Condition.
CREATE OR REPLACE FUNCTION iam_audit_statement_denies_everywhere(statement jsonb, action text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(statement ->> 'Effect', '') = 'Deny'
       AND NOT statement ? 'NotResource'
       AND coalesce(statement -> 'Condition', '{}'::jsonb) IN ('{}'::jsonb, 'null'::jsonb)
       AND iam_audit_as_array(statement -> 'Resource') @> '["*"]'::jsonb
       AND iam_audit_statement_covers(statement, action)
$$;

-- Which of the given actions a document allows, and through which statements:
-- one row per (action, Allow statement allowing it), none for actions that an
-- unconditional all-resource Deny of the same document removes.
CREATE OR REPLACE FUNCTION iam_audit_allowed_actions(document jsonb, actions text[])
RETURNS TABLE (action text, statement_index integer, sid text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT a.action, st.statement_index, st.statement ->> 'Sid'
    FROM unnest(actions) AS a(action)
    JOIN iam_audit_statements(document) AS st
      ON iam_audit_statement_allows(st.statement, a.action)
    WHERE NOT EXISTS (
        SELECT 1 FROM iam_audit_statements(document) AS d
        WHERE iam_audit_statement_denies_everywhere(d.statement, a.action)
    )
$$;

-- Known privilege-escalation paths: a rule holds when, for every group of its
-- `requires` (a JSON array of arrays of actions), the policy allows at least one
-- action of the group. PassRole combinations are evaluated within one policy.
CREATE OR REPLACE FUNCTION iam_audit_escalation_rules()
RETURNS TABLE (rule text, requires jsonb)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    VALUES
        ('iam:CreatePolicyVersion', '[["iam:CreatePolicyVersion"]]'::jsonb),
        ('iam:SetDefaultPolicyVersion', '[["iam:SetDefaultPolicyVersion"]]'),
        ('iam:Attach*Policy', '[["iam:AttachUserPolicy", "iam:AttachGroupPolicy", "iam:AttachRolePolicy"]]'),
        ('iam:Put*Policy', '[["iam:PutUserPolicy", "iam:PutGroupPolicy", "iam:PutRolePolicy"]]'),
        ('iam:CreateAccessKey', '[["iam:CreateAccessKey"]]'),
        ('iam:CreateLoginProfile', '[["iam:CreateLoginProfile"]]'),
        ('iam:UpdateLoginProfile', '[["iam:UpdateLoginProfile"]]'),
        ('iam:UpdateAssumeRolePolicy', '[["iam:UpdateAssumeRolePolicy"]]'),
        ('iam:AddUserToGroup', '[["iam:AddUserToGroup"]]'),
        ('iam:PassRole + ec2:RunInstances', '[["iam:PassRole"], ["ec2:RunInstances"]]'),
        ('iam:PassRole + lambda:CreateFunction + lambda:InvokeFunction/CreateEventSourceMapping',
         '[["iam:PassRole"], ["lambda:CreateFunction"], ["lambda:InvokeFunction", "lambda:CreateEventSourceMapping"]]'),
        ('iam:PassRole + cloudformation:CreateStack', '[["iam:PassRole"], ["cloudformation:CreateStack"]]'),
        ('iam:PassRole + glue:CreateDevEndpoint', '[["iam:PassRole"], ["glue:CreateDevEndpoint"]]'),
        ('lambda:UpdateFunctionCode', '[["lambda:UpdateFunctionCode"]]')
$$;

-- Every action named by a rule (the fixed list of sensitive actions).
CREATE OR REPLACE FUNCTION iam_audit_escalation_actions() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(DISTINCT a.action ORDER BY a.action)
    FROM iam_audit_escalation_rules() AS r
    CROSS JOIN LATERAL jsonb_array_elements(r.requires) AS g(actions)
    CROSS JOIN LATERAL jsonb_array_elements_text(g.actions) AS a(action)
$$;

-- The escalation rules a policy document meets, in rule order, each with the
-- allowed actions that meet it, whether those are all the actions the rule names
-- (false: only some alternatives, e.g. iam:AttachRolePolicy of iam:Attach*Policy),
-- and the statements allowing them ("statement 0 (Sid X), statement 2").
-- (Dropped first: CREATE OR REPLACE cannot change the result columns of an earlier version.)
DROP FUNCTION IF EXISTS iam_audit_privilege_escalations(jsonb);
CREATE OR REPLACE FUNCTION iam_audit_privilege_escalations(document jsonb)
RETURNS TABLE (rule text, actions text[], all_actions boolean, statements text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH allowed AS (
        SELECT * FROM iam_audit_allowed_actions(document, iam_audit_escalation_actions())
    ),
    met AS (
        SELECT r.rule, r.requires, ord
        FROM iam_audit_escalation_rules() WITH ORDINALITY AS r(rule, requires, ord)
        WHERE NOT EXISTS (
            SELECT 1 FROM jsonb_array_elements(r.requires) AS g(actions)
            WHERE NOT EXISTS (SELECT 1 FROM allowed a WHERE g.actions ? a.action)
        )
    )
    SELECT m.rule,
           (SELECT array_agg(DISTINCT a.action ORDER BY a.action)
            FROM allowed a
            WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(m.requires) AS g(actions) WHERE g.actions ? a.action)),
           NOT EXISTS (SELECT 1
                       FROM jsonb_array_elements(m.requires) AS g(actions)
                       CROSS JOIN LATERAL jsonb_array_elements_text(g.actions) AS n(action)
                       WHERE NOT EXISTS (SELECT 1 FROM allowed a WHERE a.action = n.action)),
           (SELECT string_agg(format('statement %s%s', s.statement_index,
                                     CASE WHEN s.sid IS NOT NULL THEN format(' (Sid %s)', s.sid) ELSE '' END),
                              ', ' ORDER BY s.statement_index)
            FROM (SELECT DISTINCT a.statement_index, a.sid
                  FROM allowed a
                  WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(m.requires) AS g(actions)
                                WHERE g.actions ? a.action)) AS s)
    FROM met m
    ORDER BY m.ord
$$;

-- The IAM actions that, each on its own, let a principal make itself administrator
-- (attach or write an administrator policy to itself, its group or a role it can
-- use, rewrite a policy it holds, or join a group). A statement that allows any of
-- them on every IAM resource is an administrator grant, however it is written.
CREATE OR REPLACE FUNCTION iam_audit_self_admin_actions() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['iam:AttachUserPolicy', 'iam:AttachGroupPolicy', 'iam:AttachRolePolicy',
                 'iam:PutUserPolicy', 'iam:PutGroupPolicy', 'iam:PutRolePolicy',
                 'iam:CreatePolicyVersion', 'iam:AddUserToGroup', 'iam:UpdateAssumeRolePolicy']
$$;

-- True when a NotAction list leaves none of the self-administrator actions allowed
-- (every one of iam_audit_self_admin_actions() is matched by one of its patterns):
-- only then is "Allow everything except these" harmless for IAM. Excluding some
-- IAM actions ("iam:GetUser", "*:Delete*") leaves the others, iam:AttachUserPolicy
-- among them. Patterns that are not strings exclude nothing.
CREATE OR REPLACE FUNCTION iam_audit_not_action_spares_iam(not_action jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NOT EXISTS (
        SELECT 1 FROM unnest(iam_audit_self_admin_actions()) AS a(action)
        WHERE NOT iam_audit_any_pattern_matches(not_action, a.action)
    )
$$;

-- True when a statement's Resource / NotResource covers every IAM resource of an
-- account: Resource "*" (alone or in a list), or a NotResource none of whose
-- patterns matches an IAM user, role or policy ARN ("everything except
-- arn:aws:s3:::x/*" still covers IAM). A NotResource that excludes users, roles and
-- policies alike ("*", "arn:aws:iam::*") spares IAM.
CREATE OR REPLACE FUNCTION iam_audit_statement_on_every_iam_resource(statement jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN statement ? 'NotResource'
        THEN NOT (iam_audit_any_pattern_matches(statement -> 'NotResource', 'arn:aws:iam::000000000000:user/x')
                  AND iam_audit_any_pattern_matches(statement -> 'NotResource', 'arn:aws:iam::000000000000:role/x')
                  AND iam_audit_any_pattern_matches(statement -> 'NotResource', 'arn:aws:iam::000000000000:policy/x'))
        ELSE iam_audit_as_array(statement -> 'Resource') @> '["*"]'::jsonb
    END
$$;

-- True when a statement grants administrator rights on every resource: Effect Allow,
-- Resource "*" (alone or in a list) or a NotResource that leaves IAM resources in
-- (iam_audit_statement_on_every_iam_resource), and either
--   Action "*" or "*:*" (alone or in a list): every action ("*:*"); or
--   NotAction whose list leaves at least one self-administrator action allowed
--   (iam_audit_not_action_spares_iam): "Allow everything except s3:*", or except
--   "iam:GetUser", is the classic hidden administrator, who attaches
--   AdministratorAccess to itself. A NotAction that excludes every one of those
--   actions (PowerUserAccess excludes iam:*) is not counted: it cannot manage IAM
--   (hygiene_privilege_escalation evaluates what it still allows).
-- Statement one object; Action/NotAction/Resource/NotResource a string or a list.
CREATE OR REPLACE FUNCTION iam_audit_is_full_admin(statement jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_typeof(statement) = 'object'
       AND coalesce(statement ->> 'Effect', '') = 'Allow'
       AND iam_audit_statement_on_every_iam_resource(statement)
       AND CASE WHEN statement ? 'Action'
                THEN EXISTS (SELECT 1 FROM jsonb_array_elements_text(
                                 CASE WHEN jsonb_typeof(statement -> 'Action') IN ('array', 'string')
                                      THEN iam_audit_as_array(statement -> 'Action') ELSE '[]'::jsonb END) AS a(pattern)
                             WHERE a.pattern ~ '^\*+(:\*+)?$')
                WHEN statement ? 'NotAction'
                THEN NOT iam_audit_not_action_spares_iam(statement -> 'NotAction')
                ELSE false
           END
$$;

-- How a full-admin statement grants: 'Action "*"' or 'NotAction [...]', for reasons.
CREATE OR REPLACE FUNCTION iam_audit_full_admin_grant(statement jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- the wording of the Resource "*" cases is kept as before, so their reasons do not change
    SELECT CASE WHEN statement ? 'NotResource'
                THEN format('Allow %s on NotResource %s (every resource except those, IAM included)',
                            CASE WHEN statement ? 'Action' THEN 'Action "*"'
                                 ELSE format('NotAction %s', (statement -> 'NotAction')::text) END,
                            (statement -> 'NotResource')::text)
                WHEN statement ? 'Action' THEN 'Allow Action "*" on Resource "*"'
                ELSE format('Allow NotAction %s on Resource "*": every action except those, IAM included',
                            (statement -> 'NotAction')::text)
           END
$$;

-- True when any statement of a document allows "*" on "*" (iam_audit_is_full_admin).
CREATE OR REPLACE FUNCTION iam_audit_document_is_full_admin(document jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM iam_audit_statements(document) AS st
        WHERE iam_audit_is_full_admin(st.statement)
    )
$$;

-- The 12-digit AWS account id a trust-policy AWS principal names, or NULL:
-- arn:<partition>:iam::<id>:root|user/...|role/..., arn:<partition>:sts::<id>:...,
-- or a bare account id. "*" and unique ids (AIDA..., AROA...) name no account.
CREATE OR REPLACE FUNCTION iam_audit_principal_account(principal text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN principal ~ '^[0-9]{12}$' THEN principal
        ELSE (regexp_match(principal, '^arn:[^:]+:(?:iam|sts)::([0-9]{12}):'))[1]
    END
$$;

-- The policy documents the customer controls, one row per policy: customer-managed
-- policies (default version) and inline policies of users, groups and roles.
-- resource_id: the policy ARN, or "<entity ARN>#<policy name>" for inline policies.
CREATE OR REPLACE FUNCTION iam_audit_customer_policies(p_snapshot_date date)
RETURNS TABLE (account_id text, resource_id text, resource_type text, label text, document jsonb)
LANGUAGE sql STABLE AS $$
    SELECT account_id, arn, 'iam_policy', format('Customer-managed policy %s', policy_name), document
    FROM iam_stage.managed_policies
    WHERE snapshot_date = p_snapshot_date AND NOT is_aws_managed
    UNION ALL
    SELECT account_id, entity_arn || '#' || policy_name, 'iam_inline_policy',
           format('Inline policy %s of %s %s', policy_name, entity_type, entity_name), document
    FROM iam_stage.inline_policies
    WHERE snapshot_date = p_snapshot_date
$$;
