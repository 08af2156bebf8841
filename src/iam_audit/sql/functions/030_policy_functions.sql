-- Policy-document evaluation shared by the iam_hygiene checks. Every function is an
-- IMMUTABLE SQL function of its arguments (no table access) and is created with
-- CREATE OR REPLACE, so applying the schema twice is harmless.
--
-- Scope of the evaluation (what IAM does that these functions do and do not model):
--   * Allow statements grant through Action (any pattern matches) or NotAction
--     (every action that none of its patterns matches).
--   * Patterns are IAM wildcards, matched case-insensitively: "*" any run of
--     characters, "?" exactly one character.
--   * Resource, NotResource and Condition of an Allow statement are ignored (an
--     action allowed on some resource or under some condition counts as allowed),
--     with two exceptions the escalation rules use: credential actions limited to
--     the caller's own user (${aws:username}), and iam:PassRole limited by
--     iam:PassedToService to services other than the one a rule passes the role to.
--     Administrator grants (iam_audit_is_full_admin) read Resource and NotResource.
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

-- The conditions of a statement, one row per (operator, key, value).
CREATE OR REPLACE FUNCTION iam_audit_condition_values(statement jsonb)
RETURNS TABLE (operator text, condition_key text, value text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT o.key, k.key, CASE WHEN jsonb_typeof(v.value) = 'string' THEN v.value #>> '{}' ELSE v.value::text END
    FROM jsonb_each(CASE WHEN jsonb_typeof(statement -> 'Condition') = 'object'
                         THEN statement -> 'Condition' ELSE '{}'::jsonb END) AS o
    CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(o.value) = 'object' THEN o.value ELSE '{}'::jsonb END) AS k
    CROSS JOIN LATERAL jsonb_array_elements(iam_audit_as_array(k.value)) AS v
$$;

-- True for an operator that holds only when the key is present and matches:
-- StringEquals, StringEqualsIgnoreCase, StringLike, ArnEquals, ArnLike, optionally
-- prefixed ForAnyValue:. IfExists, negated and ForAllValues: operators hold when the
-- key is absent, so they bind nothing.
CREATE OR REPLACE FUNCTION iam_audit_positive_operator(operator text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(operator) ~ '^(foranyvalue:)?(stringequals|stringequalsignorecase|stringlike|arnequals|arnlike)$'
$$;

-- True when every Resource of a statement is the caller's own IAM user
-- ("arn:aws:iam::*:user/${aws:username}", any account or path before the name):
-- AWS's documented self-service pattern. Statements with NotResource, "*" or any
-- other resource are not self-only.
CREATE OR REPLACE FUNCTION iam_audit_statement_self_only(statement jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_typeof(statement) = 'object'
       AND NOT statement ? 'NotResource'
       AND jsonb_array_length(iam_audit_as_array(statement -> 'Resource')) > 0
       AND NOT EXISTS (
           SELECT 1 FROM jsonb_array_elements(iam_audit_as_array(statement -> 'Resource')) AS r(resource)
           WHERE jsonb_typeof(r.resource) <> 'string'
              OR (r.resource #>> '{}') !~ '^arn:aws[a-z-]*:iam::(\*|[0-9]{12}):user/([^*?]*/)?\$\{aws:username\}$'
       )
$$;

-- The services an Allow statement lets iam:PassRole pass roles to, from positive
-- iam:PassedToService tests (StringEquals, StringLike, ...; values may be
-- wildcards), or NULL when the statement does not restrict them.
CREATE OR REPLACE FUNCTION iam_audit_statement_passed_to(statement jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(DISTINCT c.value ORDER BY c.value)
    FROM iam_audit_condition_values(statement) AS c
    WHERE lower(c.condition_key) = 'iam:passedtoservice'
      AND iam_audit_positive_operator(c.operator)
$$;

-- Which of the given actions a document allows, and through which statements:
-- one row per (action, Allow statement allowing it), none for actions that an
-- unconditional all-resource Deny of the same document removes. self_only: the
-- statement's resources are only the caller's own user; passed_to: the services
-- its iam:PassedToService condition allows (NULL: any).
-- (Dropped first: CREATE OR REPLACE cannot change the result columns of an earlier version.)
DROP FUNCTION IF EXISTS iam_audit_privilege_escalations(jsonb);
DROP FUNCTION IF EXISTS iam_audit_allowed_actions(jsonb, text[]);
CREATE OR REPLACE FUNCTION iam_audit_allowed_actions(document jsonb, actions text[])
RETURNS TABLE (action text, statement_index integer, sid text, self_only boolean, passed_to text[])
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT a.action, st.statement_index, st.statement ->> 'Sid',
           iam_audit_statement_self_only(st.statement), iam_audit_statement_passed_to(st.statement)
    FROM unnest(actions) AS a(action)
    JOIN iam_audit_statements(document) AS st
      ON iam_audit_statement_allows(st.statement, a.action)
    WHERE NOT EXISTS (
        SELECT 1 FROM iam_audit_statements(document) AS d
        WHERE iam_audit_statement_denies_everywhere(d.statement, a.action)
    )
$$;

-- Known privilege-escalation paths (the union of the public references; the method
-- table docs/escalation-paths.yaml maps each reference's method to a rule here). A
-- rule holds when, for every group of its `requires` (a JSON array of arrays of
-- actions), at least one action of the group is allowed, where
--   passed_to (PassRole combinations): the services the role is passed to; an
--     iam:PassRole statement whose iam:PassedToService condition matches none of
--     them does not count for the rule;
--   self_ok (credential rules): statements whose resources are only the caller's
--     own user (${aws:username}) do not count: a user managing its own keys or
--     password gains nothing;
--   needs_deny: the rule holds only where a Deny statement exists to be removed
--     (per policy: in the same document; per principal: in any policy it holds).
-- "existing" rules need a resource that already runs with a role (a function, a
-- stack, an instance, a notebook, a project): their actions alone are flagged, as
-- the role of the resource is not collected.
-- (Dropped first: its result columns grew since the earlier release.)
DROP FUNCTION IF EXISTS iam_audit_escalation_rules();
CREATE OR REPLACE FUNCTION iam_audit_escalation_rules()
RETURNS TABLE (rule text, requires jsonb, passed_to text[], self_ok boolean, needs_deny boolean)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT r.rule, r.requires::jsonb, r.passed_to, coalesce(r.self_ok, false), coalesce(r.needs_deny, false)
    FROM (VALUES
        ('iam:CreatePolicyVersion', '[["iam:CreatePolicyVersion"]]', NULL::text[], NULL::boolean, NULL::boolean),
        ('iam:SetDefaultPolicyVersion', '[["iam:SetDefaultPolicyVersion"]]', NULL, NULL, NULL),
        ('iam:Attach*Policy', '[["iam:AttachUserPolicy", "iam:AttachGroupPolicy", "iam:AttachRolePolicy"]]', NULL, NULL, NULL),
        ('iam:Put*Policy', '[["iam:PutUserPolicy", "iam:PutGroupPolicy", "iam:PutRolePolicy"]]', NULL, NULL, NULL),
        ('iam:CreateAccessKey', '[["iam:CreateAccessKey"]]', NULL, true, NULL),
        ('iam:CreateLoginProfile', '[["iam:CreateLoginProfile"]]', NULL, true, NULL),
        ('iam:UpdateLoginProfile', '[["iam:UpdateLoginProfile"]]', NULL, true, NULL),
        ('iam:UpdateAssumeRolePolicy', '[["iam:UpdateAssumeRolePolicy"]]', NULL, NULL, NULL),
        ('iam:AddUserToGroup', '[["iam:AddUserToGroup"]]', NULL, NULL, NULL),
        ('iam:PassRole + ec2:RunInstances', '[["iam:PassRole"], ["ec2:RunInstances"]]',
         ARRAY['ec2.amazonaws.com'], NULL, NULL),
        ('iam:PassRole + lambda:CreateFunction + lambda:InvokeFunction/CreateEventSourceMapping',
         '[["iam:PassRole"], ["lambda:CreateFunction"], ["lambda:InvokeFunction", "lambda:CreateEventSourceMapping"]]',
         ARRAY['lambda.amazonaws.com'], NULL, NULL),
        ('iam:PassRole + cloudformation:CreateStack', '[["iam:PassRole"], ["cloudformation:CreateStack"]]',
         ARRAY['cloudformation.amazonaws.com'], NULL, NULL),
        ('iam:PassRole + glue:CreateDevEndpoint', '[["iam:PassRole"], ["glue:CreateDevEndpoint"]]',
         ARRAY['glue.amazonaws.com'], NULL, NULL),
        ('lambda:UpdateFunctionCode', '[["lambda:UpdateFunctionCode"]]', NULL, NULL, NULL),
        -- added: the references' other families
        ('iam:*PermissionsBoundary', '[["iam:DeleteUserPermissionsBoundary", "iam:DeleteRolePermissionsBoundary", "iam:PutUserPermissionsBoundary", "iam:PutRolePermissionsBoundary"]]',
         NULL, NULL, NULL),
        ('iam:Detach*Policy/Delete*Policy with a Deny to remove',
         '[["iam:DetachUserPolicy", "iam:DetachGroupPolicy", "iam:DetachRolePolicy", "iam:DeleteUserPolicy", "iam:DeleteGroupPolicy", "iam:DeleteRolePolicy", "iam:DeletePolicy", "iam:DeletePolicyVersion"]]',
         NULL, NULL, true),
        ('lambda:UpdateFunctionConfiguration', '[["lambda:UpdateFunctionConfiguration"]]', NULL, NULL, NULL),
        ('iam:PassRole + lambda:CreateFunction + lambda:AddPermission',
         '[["iam:PassRole"], ["lambda:CreateFunction"], ["lambda:AddPermission"]]', ARRAY['lambda.amazonaws.com'], NULL, NULL),
        ('iam:PassRole + ec2:RequestSpotInstances', '[["iam:PassRole"], ["ec2:RequestSpotInstances"]]',
         ARRAY['ec2.amazonaws.com', 'spot.amazonaws.com'], NULL, NULL),
        ('iam:PassRole + launch configuration/template + autoscaling group',
         '[["iam:PassRole"], ["autoscaling:CreateLaunchConfiguration", "ec2:CreateLaunchTemplate"], ["autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup"]]',
         ARRAY['ec2.amazonaws.com', 'autoscaling.amazonaws.com'], NULL, NULL),
        ('ec2:CreateLaunchTemplateVersion + ec2:ModifyLaunchTemplate',
         '[["ec2:CreateLaunchTemplateVersion"], ["ec2:ModifyLaunchTemplate"]]', NULL, NULL, NULL),
        ('ec2:ModifyInstanceAttribute + ec2:StopInstances + ec2:StartInstances',
         '[["ec2:ModifyInstanceAttribute"], ["ec2:StopInstances"], ["ec2:StartInstances"]]', NULL, NULL, NULL),
        ('ec2-instance-connect:SendSSHPublicKey', '[["ec2-instance-connect:SendSSHPublicKey"]]', NULL, NULL, NULL),
        ('ssm:SendCommand/StartSession', '[["ssm:SendCommand", "ssm:StartSession"]]', NULL, NULL, NULL),
        ('cloudformation:UpdateStack', '[["cloudformation:UpdateStack"]]', NULL, NULL, NULL),
        ('cloudformation:CreateChangeSet + cloudformation:ExecuteChangeSet',
         '[["cloudformation:CreateChangeSet"], ["cloudformation:ExecuteChangeSet"]]', NULL, NULL, NULL),
        ('iam:PassRole + cloudformation:CreateStackSet + cloudformation:CreateStackInstances',
         '[["iam:PassRole"], ["cloudformation:CreateStackSet"], ["cloudformation:CreateStackInstances"]]',
         ARRAY['cloudformation.amazonaws.com'], NULL, NULL),
        ('iam:PassRole + cloudformation:UpdateStackSet', '[["iam:PassRole"], ["cloudformation:UpdateStackSet"]]',
         ARRAY['cloudformation.amazonaws.com'], NULL, NULL),
        ('glue:UpdateDevEndpoint', '[["glue:UpdateDevEndpoint"]]', NULL, NULL, NULL),
        ('iam:PassRole + glue:CreateJob/UpdateJob + glue:StartJobRun/CreateTrigger',
         '[["iam:PassRole"], ["glue:CreateJob", "glue:UpdateJob"], ["glue:StartJobRun", "glue:CreateTrigger"]]',
         ARRAY['glue.amazonaws.com'], NULL, NULL),
        ('iam:PassRole + datapipeline:CreatePipeline + datapipeline:PutPipelineDefinition',
         '[["iam:PassRole"], ["datapipeline:CreatePipeline"], ["datapipeline:PutPipelineDefinition"]]',
         ARRAY['datapipeline.amazonaws.com', 'elasticmapreduce.amazonaws.com'], NULL, NULL),
        ('iam:PassRole + sagemaker:CreateNotebookInstance/CreateTrainingJob/CreateProcessingJob',
         '[["iam:PassRole"], ["sagemaker:CreateNotebookInstance", "sagemaker:CreateTrainingJob", "sagemaker:CreateProcessingJob"]]',
         ARRAY['sagemaker.amazonaws.com'], NULL, NULL),
        ('sagemaker:CreatePresignedNotebookInstanceUrl', '[["sagemaker:CreatePresignedNotebookInstanceUrl"]]', NULL, NULL, NULL),
        ('sagemaker:notebook lifecycle configuration',
         '[["sagemaker:CreateNotebookInstanceLifecycleConfig"], ["sagemaker:StopNotebookInstance"], ["sagemaker:UpdateNotebookInstance"], ["sagemaker:StartNotebookInstance"]]',
         NULL, NULL, NULL),
        ('iam:PassRole + ecs:RegisterTaskDefinition + ecs:RunTask/StartTask/CreateService',
         '[["iam:PassRole"], ["ecs:RegisterTaskDefinition"], ["ecs:RunTask", "ecs:StartTask", "ecs:CreateService"]]',
         ARRAY['ecs-tasks.amazonaws.com', 'ecs.amazonaws.com'], NULL, NULL),
        ('ecs:ExecuteCommand', '[["ecs:ExecuteCommand"]]', NULL, NULL, NULL),
        -- RunTask's overrides name a task role: an existing task definition is enough
        ('iam:PassRole + ecs:RunTask (task role override)', '[["iam:PassRole"], ["ecs:RunTask"]]',
         ARRAY['ecs-tasks.amazonaws.com', 'ecs.amazonaws.com'], NULL, NULL),
        ('iam:PassRole + ecs:StartTask + ecs:RegisterContainerInstance',
         '[["iam:PassRole"], ["ecs:StartTask"], ["ecs:RegisterContainerInstance"]]',
         ARRAY['ecs-tasks.amazonaws.com', 'ecs.amazonaws.com'], NULL, NULL),
        ('iam:PassRole + codestar:CreateProject', '[["iam:PassRole"], ["codestar:CreateProject"]]',
         ARRAY['codestar.amazonaws.com'], NULL, NULL),
        ('iam:PassRole + codebuild:CreateProject + codebuild:StartBuild/StartBuildBatch',
         '[["iam:PassRole"], ["codebuild:CreateProject"], ["codebuild:StartBuild", "codebuild:StartBuildBatch"]]',
         ARRAY['codebuild.amazonaws.com'], NULL, NULL),
        ('codebuild:StartBuild/StartBuildBatch', '[["codebuild:StartBuild", "codebuild:StartBuildBatch"]]', NULL, NULL, NULL),
        ('iam:PassRole + apprunner:CreateService', '[["iam:PassRole"], ["apprunner:CreateService"]]',
         ARRAY['apprunner.amazonaws.com', 'tasks.apprunner.amazonaws.com', 'build.apprunner.amazonaws.com'], NULL, NULL),
        ('apprunner:UpdateService', '[["apprunner:UpdateService"]]', NULL, NULL, NULL),
        ('iam:PassRole + bedrock-agentcore code interpreter',
         '[["iam:PassRole"], ["bedrock-agentcore:CreateCodeInterpreter"], ["bedrock-agentcore:StartCodeInterpreterSession"], ["bedrock-agentcore:InvokeCodeInterpreter"]]',
         ARRAY['bedrock-agentcore.amazonaws.com'], NULL, NULL),
        ('bedrock-agentcore:StartCodeInterpreterSession + InvokeCodeInterpreter',
         '[["bedrock-agentcore:StartCodeInterpreterSession"], ["bedrock-agentcore:InvokeCodeInterpreter"]]', NULL, NULL, NULL)
    ) AS r(rule, requires, passed_to, self_ok, needs_deny)
$$;

-- Every action named by a rule (the fixed list of sensitive actions).
CREATE OR REPLACE FUNCTION iam_audit_escalation_actions() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(DISTINCT a.action ORDER BY a.action)
    FROM iam_audit_escalation_rules() AS r
    CROSS JOIN LATERAL jsonb_array_elements(r.requires) AS g(actions)
    CROSS JOIN LATERAL jsonb_array_elements_text(g.actions) AS a(action)
$$;

-- True when an allowed (action, statement) counts for a rule: not a self-only
-- statement of a credential rule, and not an iam:PassRole whose PassedToService
-- condition names none of the rule's services.
CREATE OR REPLACE FUNCTION iam_audit_counts_for_rule(action text, self_only boolean, passed_to text[],
                                                     rule_passed_to text[], rule_self_ok boolean)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NOT (rule_self_ok AND self_only)
       AND (action <> 'iam:PassRole' OR passed_to IS NULL OR rule_passed_to IS NULL
            OR EXISTS (SELECT 1 FROM unnest(passed_to) AS p(pattern) CROSS JOIN unnest(rule_passed_to) AS s(service)
                       WHERE iam_audit_action_matches(p.pattern, s.service)))
$$;

-- The escalation rules a policy document meets, in rule order, each with the
-- allowed actions that meet it, whether those are all the actions the rule names
-- (false: only some alternatives, e.g. iam:AttachRolePolicy of iam:Attach*Policy),
-- and the statements allowing them ("statement 0 (Sid X), statement 2").
CREATE OR REPLACE FUNCTION iam_audit_privilege_escalations(document jsonb)
RETURNS TABLE (rule text, actions text[], all_actions boolean, statements text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH allowed AS (
        SELECT * FROM iam_audit_allowed_actions(document, iam_audit_escalation_actions())
    ),
    usable AS (
        SELECT r.rule, r.requires, r.ord, r.needs_deny, a.action, a.statement_index, a.sid
        FROM iam_audit_escalation_rules() WITH ORDINALITY AS r(rule, requires, passed_to, self_ok, needs_deny, ord)
        JOIN allowed a
          ON EXISTS (SELECT 1 FROM jsonb_array_elements(r.requires) AS g(actions) WHERE g.actions ? a.action)
         AND iam_audit_counts_for_rule(a.action, a.self_only, a.passed_to, r.passed_to, r.self_ok)
    ),
    met AS (
        SELECT DISTINCT u.rule, u.requires, u.ord
        FROM usable u
        WHERE NOT EXISTS (
            SELECT 1 FROM jsonb_array_elements(u.requires) AS g(actions)
            WHERE NOT EXISTS (SELECT 1 FROM usable v WHERE v.rule = u.rule AND g.actions ? v.action)
        )
          AND (NOT u.needs_deny
               OR EXISTS (SELECT 1 FROM iam_audit_statements(document) AS d
                          WHERE coalesce(d.statement ->> 'Effect', '') = 'Deny'))
    )
    SELECT m.rule,
           (SELECT array_agg(DISTINCT u.action ORDER BY u.action) FROM usable u WHERE u.rule = m.rule),
           NOT EXISTS (SELECT 1
                       FROM jsonb_array_elements(m.requires) AS g(actions)
                       CROSS JOIN LATERAL jsonb_array_elements_text(g.actions) AS n(action)
                       WHERE NOT EXISTS (SELECT 1 FROM usable u WHERE u.rule = m.rule AND u.action = n.action)),
           (SELECT string_agg(format('statement %s%s', s.statement_index,
                                     CASE WHEN s.sid IS NOT NULL THEN format(' (Sid %s)', s.sid) ELSE '' END),
                              ', ' ORDER BY s.statement_index)
            FROM (SELECT DISTINCT u.statement_index, u.sid FROM usable u WHERE u.rule = m.rule) AS s)
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

-- The statements of a document that allow "*" on "*", each named with its index, its Sid and the grant
-- (iam_audit_full_admin_grant), in statement order: the reason of both full-admin checks (managed and
-- inline policies); NULL when there is none.
CREATE OR REPLACE FUNCTION iam_audit_full_admin_statements(document jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT string_agg(format('statement %s%s: %s', st.statement_index,
                             CASE WHEN st.statement ? 'Sid' THEN format(' (Sid %s)', st.statement ->> 'Sid') ELSE '' END,
                             iam_audit_full_admin_grant(st.statement)),
                      '; ' ORDER BY st.statement_index)
    FROM iam_audit_statements(document) AS st
    WHERE iam_audit_is_full_admin(st.statement)
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

-- The roles an Allow statement names as its only resources, when every Resource is a
-- role ARN of one account without wildcards ("arn:aws:iam::111111111111:role/deploy");
-- NULL otherwise (NotResource, "*", a wildcard, any other resource). Used to judge
-- iam:PassRole limited to named roles.
CREATE OR REPLACE FUNCTION iam_audit_statement_role_targets(statement jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN jsonb_typeof(statement) <> 'object' OR statement ? 'NotResource' THEN NULL
        WHEN jsonb_array_length(iam_audit_as_array(statement -> 'Resource')) = 0 THEN NULL
        WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(iam_audit_as_array(statement -> 'Resource')) AS r(resource)
                     WHERE jsonb_typeof(r.resource) <> 'string'
                        OR (r.resource #>> '{}') !~ '^arn:aws[a-z-]*:iam::[0-9]{12}:role/[^*?]+$')
        THEN NULL
        ELSE ARRAY(SELECT DISTINCT r.resource
                   FROM jsonb_array_elements_text(iam_audit_as_array(statement -> 'Resource')) AS r(resource)
                   ORDER BY 1)
    END
$$;

-- What one policy document contributes to a principal's effective permissions, for
-- the per-principal evaluation (hygiene_principal_escalation), one row per fact:
--   'allow'    an escalation action allowed by a statement (with self_only and
--              passed_to, as iam_audit_allowed_actions; Denies of the same document
--              already removed; for iam:PassRole, targets: the roles the statement
--              is limited to, iam_audit_statement_role_targets);
--   'deny'     an escalation action the document denies everywhere (unconditional,
--              Resource "*"): removed from every other policy of the principal too;
--   'has_deny' the document holds a Deny statement (action NULL);
--   'admin'    the document grants "*:*" (iam_audit_is_full_admin; action NULL).
-- Evaluated once per distinct document; principals join the facts of their documents.
-- (Dropped first: CREATE OR REPLACE cannot change the result columns of an earlier version.)
DROP FUNCTION IF EXISTS iam_audit_document_facts(jsonb);
CREATE OR REPLACE FUNCTION iam_audit_document_facts(document jsonb)
RETURNS TABLE (kind text, action text, statement_index integer, sid text, self_only boolean, passed_to text[],
               targets text[])
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'allow', a.action, a.statement_index, a.sid, a.self_only, a.passed_to,
           CASE WHEN a.action = 'iam:PassRole'
                THEN (SELECT iam_audit_statement_role_targets(st.statement)
                      FROM iam_audit_statements(document) AS st WHERE st.statement_index = a.statement_index)
           END
    FROM iam_audit_allowed_actions(document, iam_audit_escalation_actions()) AS a
    UNION ALL
    SELECT 'deny', e.action, NULL, NULL, NULL, NULL, NULL
    FROM unnest(iam_audit_escalation_actions()) AS e(action)
    WHERE EXISTS (SELECT 1 FROM iam_audit_statements(document) AS d
                  WHERE iam_audit_statement_denies_everywhere(d.statement, e.action))
    UNION ALL
    SELECT 'has_deny', NULL, NULL, NULL, NULL, NULL, NULL
    WHERE EXISTS (SELECT 1 FROM iam_audit_statements(document) AS d
                  WHERE jsonb_typeof(d.statement) = 'object' AND d.statement ->> 'Effect' = 'Deny')
    UNION ALL
    SELECT 'admin', NULL, NULL, NULL, NULL, NULL, NULL
    WHERE iam_audit_document_is_full_admin(document)
$$;

-- The escalation actions a permissions boundary lets through: allowed by one of its
-- statements (Resource and Condition ignored, as for any Allow) and not denied
-- everywhere by it.
CREATE OR REPLACE FUNCTION iam_audit_boundary_allows(document jsonb)
RETURNS TABLE (action text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT DISTINCT a.action FROM iam_audit_allowed_actions(document, iam_audit_escalation_actions()) AS a
$$;

-- True when a statement's resources reach whatever the self-administrator action
-- needs to act on: every resource of the action's kind (a user for
-- iam:Attach/PutUserPolicy, a group for iam:Attach/PutGroupPolicy and
-- iam:AddUserToGroup, a role for iam:Attach/PutRolePolicy and
-- iam:UpdateAssumeRolePolicy, a policy for iam:CreatePolicyVersion: "*",
-- "arn:aws:iam::*:user/*", a NotResource that leaves them in), or, for the user
-- actions, the caller's own user ("arn:aws:iam::*:user/${aws:username}"). A named
-- role, group or policy is not enough: whether it serves the holder is not known.
CREATE OR REPLACE FUNCTION iam_audit_statement_reaches_own_kind(statement jsonb, action text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH k AS (
        SELECT 'arn:aws:iam::000000000000:' || CASE
                   WHEN action ILIKE 'iam:%UserPolicy' THEN 'user'
                   WHEN action ILIKE 'iam:%GroupPolicy' OR action ILIKE 'iam:AddUserToGroup' THEN 'group'
                   WHEN action ILIKE 'iam:%Role%' THEN 'role'
                   ELSE 'policy' END || '/x' AS probe,
               action ILIKE 'iam:%UserPolicy' AS on_user
    )
    SELECT CASE
        WHEN statement ? 'NotResource' THEN NOT iam_audit_any_pattern_matches(statement -> 'NotResource', k.probe)
        ELSE iam_audit_any_pattern_matches(statement -> 'Resource', k.probe)
             OR (k.on_user AND EXISTS (
                    SELECT 1 FROM jsonb_array_elements_text(
                        CASE WHEN jsonb_typeof(statement -> 'Resource') IN ('array', 'string')
                             THEN iam_audit_as_array(statement -> 'Resource') ELSE '[]'::jsonb END) AS r(resource)
                    WHERE r.resource ~ '^arn:aws[a-z-]*:iam::(\*|[0-9]{12}):user/([^*?]*/)?\$\{aws:username\}$'))
    END
    FROM k
$$;

-- True when a document lets its holder make itself administrator with one action:
-- an Allow statement allowing one of iam_audit_self_admin_actions() on resources that
-- reach the holder (iam_audit_statement_reaches_own_kind), not denied everywhere by
-- the same document (AWS-managed IAMFullAccess: iam:* on "*"; iam:AttachUserPolicy on
-- the caller's own user).
CREATE OR REPLACE FUNCTION iam_audit_document_can_self_admin(document jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1
        FROM unnest(iam_audit_self_admin_actions()) AS a(action)
        JOIN iam_audit_statements(document) AS st
          ON iam_audit_statement_allows(st.statement, a.action)
         AND iam_audit_statement_reaches_own_kind(st.statement, a.action)
        WHERE NOT EXISTS (SELECT 1 FROM iam_audit_statements(document) AS d
                          WHERE iam_audit_statement_denies_everywhere(d.statement, a.action))
    )
$$;
