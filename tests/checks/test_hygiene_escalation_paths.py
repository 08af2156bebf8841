"""One customer-managed policy per privilege-escalation method of the public references.

PATHS names the fixtures that docs/escalation-paths.yaml cites: every 'detected'
method there names a key of PATHS that must fail IH.1, and near misses that must
pass sit beside them (NEAR_MISSES) so a rule cannot be met by less than it needs.
"""

from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "hygiene_privilege_escalation"
FW, ID = "iam_hygiene", "IH.1"
A = "111111111111"
SELF = "arn:aws:iam::*:user/${aws:username}"


def doc(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def passrole_to(service: str) -> dict:
    return allow("iam:PassRole", Condition={"StringEquals": {"iam:PassedToService": service}})


def with_passrole(*actions) -> dict:
    return doc(allow(["iam:PassRole", *actions]))


# fixture -> policy document that must fail IH.1 (each is one method of the references)
PATHS = {
    # IAM: the principal changes its own or another principal's permissions or credentials
    "iam-create-policy-version": doc(allow("iam:CreatePolicyVersion")),
    "iam-set-default-policy-version": doc(allow("iam:SetDefaultPolicyVersion")),
    "iam-attach-user-policy": doc(allow("iam:AttachUserPolicy")),
    "iam-attach-group-policy": doc(allow("iam:AttachGroupPolicy")),
    "iam-attach-role-policy": doc(allow("iam:AttachRolePolicy")),
    "iam-put-user-policy": doc(allow("iam:PutUserPolicy")),
    "iam-put-group-policy": doc(allow("iam:PutGroupPolicy")),
    "iam-put-role-policy": doc(allow("iam:PutRolePolicy")),
    "iam-create-access-key": doc(allow("iam:CreateAccessKey")),
    "iam-create-login-profile": doc(allow("iam:CreateLoginProfile")),
    "iam-update-login-profile": doc(allow("iam:UpdateLoginProfile")),
    "iam-update-assume-role-policy": doc(allow("iam:UpdateAssumeRolePolicy")),
    "iam-add-user-to-group": doc(allow("iam:AddUserToGroup")),
    "iam-delete-user-permissions-boundary": doc(allow("iam:DeleteUserPermissionsBoundary")),
    "iam-delete-role-permissions-boundary": doc(allow("iam:DeleteRolePermissionsBoundary")),
    "iam-put-user-permissions-boundary": doc(allow("iam:PutUserPermissionsBoundary")),
    "iam-put-role-permissions-boundary": doc(allow("iam:PutRolePermissionsBoundary")),
    "iam-detach-policy-holding-deny": doc(allow("iam:DetachUserPolicy"),
                                          {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::vault/*"}),
    "iam-delete-inline-policy-holding-deny": doc(
        allow("iam:DeleteUserPolicy"),
        {"Effect": "Deny", "Action": "ec2:*", "Resource": "*",
         "Condition": {"StringNotEquals": {"aws:RequestedRegion": "eu-west-1"}}}),
    # a new resource runs with a role the principal passes to it
    "ec2-passrole-run-instances": with_passrole("ec2:RunInstances"),
    "ec2-passrole-request-spot-instances": with_passrole("ec2:RequestSpotInstances"),
    "autoscaling-passrole-launch-configuration": with_passrole("autoscaling:CreateLaunchConfiguration",
                                                               "autoscaling:CreateAutoScalingGroup"),
    "autoscaling-passrole-launch-template": with_passrole("ec2:CreateLaunchTemplate",
                                                          "autoscaling:UpdateAutoScalingGroup"),
    "lambda-passrole-create-invoke": with_passrole("lambda:CreateFunction", "lambda:InvokeFunction"),
    "lambda-passrole-create-event-source": with_passrole("lambda:CreateFunction", "lambda:CreateEventSourceMapping"),
    "lambda-passrole-create-add-permission": with_passrole("lambda:CreateFunction", "lambda:AddPermission"),
    "cloudformation-passrole-create-stack": with_passrole("cloudformation:CreateStack"),
    "cloudformation-passrole-stack-set": with_passrole("cloudformation:CreateStackSet",
                                                       "cloudformation:CreateStackInstances"),
    "cloudformation-passrole-update-stack-set": with_passrole("cloudformation:UpdateStackSet"),
    "glue-passrole-dev-endpoint": with_passrole("glue:CreateDevEndpoint"),
    "glue-passrole-create-job-run": with_passrole("glue:CreateJob", "glue:StartJobRun"),
    "glue-passrole-create-job-trigger": with_passrole("glue:CreateJob", "glue:CreateTrigger"),
    "glue-passrole-update-job-run": with_passrole("glue:UpdateJob", "glue:StartJobRun"),
    "glue-passrole-update-job-trigger": with_passrole("glue:UpdateJob", "glue:CreateTrigger"),
    "datapipeline-passrole-pipeline": with_passrole("datapipeline:CreatePipeline",
                                                    "datapipeline:PutPipelineDefinition"),
    "sagemaker-passrole-notebook": with_passrole("sagemaker:CreateNotebookInstance"),
    "sagemaker-passrole-training-job": with_passrole("sagemaker:CreateTrainingJob"),
    "sagemaker-passrole-processing-job": with_passrole("sagemaker:CreateProcessingJob"),
    "ecs-passrole-run-task": with_passrole("ecs:RegisterTaskDefinition", "ecs:RunTask"),
    "ecs-passrole-start-task": with_passrole("ecs:RegisterTaskDefinition", "ecs:StartTask"),
    "ecs-passrole-create-service": with_passrole("ecs:RegisterTaskDefinition", "ecs:CreateService"),
    "ecs-passrole-cluster-run-task": with_passrole("ecs:CreateCluster", "ecs:RegisterTaskDefinition", "ecs:RunTask"),
    "ecs-passrole-run-task-override": with_passrole("ecs:RunTask"),
    "ecs-passrole-start-task-container-instance": with_passrole("ecs:StartTask", "ecs:RegisterContainerInstance"),
    "codestar-passrole-create-project": with_passrole("codestar:CreateProject"),
    "codebuild-passrole-project-build": with_passrole("codebuild:CreateProject", "codebuild:StartBuild"),
    "codebuild-passrole-project-batch": with_passrole("codebuild:CreateProject", "codebuild:StartBuildBatch"),
    "apprunner-passrole-create-service": with_passrole("apprunner:CreateService"),
    "bedrock-passrole-code-interpreter": with_passrole("bedrock-agentcore:CreateCodeInterpreter",
                                                       "bedrock-agentcore:StartCodeInterpreterSession",
                                                       "bedrock-agentcore:InvokeCodeInterpreter"),
    # a resource already running with a role is made to run the principal's code
    "lambda-update-function-code": doc(allow("lambda:UpdateFunctionCode")),
    "lambda-update-function-configuration": doc(allow("lambda:UpdateFunctionConfiguration")),
    "ec2-launch-template-version": doc(allow(["ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"])),
    "ec2-modify-user-data": doc(allow(["ec2:ModifyInstanceAttribute", "ec2:StopInstances", "ec2:StartInstances"])),
    "ec2-instance-connect": doc(allow("ec2-instance-connect:SendSSHPublicKey")),
    "ssm-send-command": doc(allow("ssm:SendCommand")),
    "ssm-start-session": doc(allow("ssm:StartSession")),
    "cloudformation-update-stack": doc(allow("cloudformation:UpdateStack")),
    "cloudformation-change-set": doc(allow(["cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet"])),
    "glue-update-dev-endpoint": doc(allow("glue:UpdateDevEndpoint")),
    "sagemaker-presigned-notebook-url": doc(allow("sagemaker:CreatePresignedNotebookInstanceUrl")),
    "sagemaker-lifecycle-config": doc(allow(["sagemaker:CreateNotebookInstanceLifecycleConfig",
                                             "sagemaker:StopNotebookInstance", "sagemaker:UpdateNotebookInstance",
                                             "sagemaker:StartNotebookInstance"])),
    "ecs-execute-command": doc(allow("ecs:ExecuteCommand")),
    "codebuild-start-build": doc(allow("codebuild:StartBuild")),
    "codebuild-start-build-batch": doc(allow("codebuild:StartBuildBatch")),
    "apprunner-update-service": doc(allow("apprunner:UpdateService")),
    "bedrock-code-interpreter-session": doc(allow(["bedrock-agentcore:StartCodeInterpreterSession",
                                                   "bedrock-agentcore:InvokeCodeInterpreter"])),
    # PassRole limited to the service the combination passes the role to still escalates
    "ec2-passrole-to-ec2": doc(passrole_to("ec2.amazonaws.com"), allow("ec2:RunInstances")),
    "lambda-passrole-to-lambda-wildcard": doc(
        allow("iam:PassRole", Condition={"StringLike": {"iam:PassedToService": "lambda.*"}}),
        allow(["lambda:CreateFunction", "lambda:InvokeFunction"])),
    # credential actions on every user, or on a named other user
    "iam-create-access-key-any-user": doc(allow("iam:CreateAccessKey", "arn:aws:iam::*:user/*")),
    "iam-login-profile-named-user": doc(allow("iam:UpdateLoginProfile", f"arn:aws:iam::{A}:user/admin")),
    # attaching a policy to oneself is escalation even on the self-only resource
    "iam-attach-own-user-policy": doc(allow("iam:AttachUserPolicy", SELF)),
}

# fixture -> policy document that must pass IH.1: one piece short, or cleared by the references
NEAR_MISSES = {
    "datapipeline-create-without-definition": with_passrole("datapipeline:CreatePipeline"),
    "ecs-service-without-register": with_passrole("ecs:CreateService", "ecs:StartTask"),
    "ecs-register-without-passrole": doc(allow(["ecs:RegisterTaskDefinition", "ecs:RunTask"])),
    "codebuild-create-without-passrole": doc(allow("codebuild:CreateProject")),
    "lambda-create-add-permission-without-passrole": doc(allow(["lambda:CreateFunction", "lambda:AddPermission"])),
    "autoscaling-group-without-launch-configuration": with_passrole("autoscaling:CreateAutoScalingGroup"),
    "cloudformation-change-set-without-execute": doc(allow("cloudformation:CreateChangeSet")),
    "ec2-modify-without-restart": doc(allow(["ec2:ModifyInstanceAttribute", "ec2:StopInstances"])),
    "iam-detach-without-any-deny": doc(allow(["iam:DetachUserPolicy", "iam:DeleteRolePolicy"])),
    "iam-read-boundaries": doc(allow(["iam:GetUser", "iam:ListPolicies"])),
    # AWS's documented self-service policy: the caller's own keys, password and MFA
    "iam-self-service-credentials": doc(
        allow(["iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:ListAccessKeys",
               "iam:CreateLoginProfile", "iam:UpdateLoginProfile", "iam:ChangePassword", "iam:GetUser"],
              SELF, Sid="ManageOwnCredentials"),
        allow(["iam:CreateAccessKey"], f"arn:aws:iam::{A}:user/staff/${{aws:username}}")),
    # PassRole only to Lambda cannot give an EC2 instance a role
    "ec2-passrole-only-to-lambda": doc(passrole_to("lambda.amazonaws.com"), allow("ec2:RunInstances")),
    "ecs-passrole-only-to-glue": doc(passrole_to("glue.amazonaws.com"),
                                     allow(["ecs:RegisterTaskDefinition", "ecs:RunTask"])),
}


def test_every_reference_method_fails_and_every_near_miss_passes(db):
    s = Snapshot(db).account(A)
    for name, document in {**PATHS, **NEAR_MISSES}.items():
        s.managed_policy(A, name, document)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    got = statuses(db, LOGIC, FW)
    expected = {**{name: "fail" for name in PATHS}, **{name: "pass" for name in NEAR_MISSES}}
    assert {name: got[Snapshot.arn(A, "policy", name)] for name in expected} == expected
    reasons = verdicts(db, LOGIC, FW)

    def why(name):
        return reasons[(FW, ID, A, Snapshot.arn(A, "policy", name))][1]

    assert "iam:Detach*Policy/Delete*Policy with a Deny to remove (iam:DetachUserPolicy)" in why(
        "iam-detach-policy-holding-deny")
    assert "iam:PassRole + ecs:RegisterTaskDefinition + ecs:RunTask/StartTask/CreateService" in why(
        "ecs-passrole-run-task")
    # the self-only statement is not named; the one on every user is
    assert "iam:CreateAccessKey" in why("iam-create-access-key-any-user")


def test_a_mixed_policy_names_only_what_escalates(db):
    """Self-service credentials next to a PassRole for Lambda and an EC2 launch: nothing escalates."""
    s = Snapshot(db).account(A)
    s.managed_policy(A, "mixed", doc(allow(["iam:CreateAccessKey", "iam:UpdateLoginProfile"], SELF),
                                     passrole_to("lambda.amazonaws.com"),
                                     allow(["ec2:RunInstances", "lambda:CreateFunction"])))
    s.managed_policy(A, "mixed-with-invoke", doc(allow(["iam:CreateAccessKey", "iam:UpdateLoginProfile"], SELF),
                                                 passrole_to("lambda.amazonaws.com"),
                                                 allow(["ec2:RunInstances", "lambda:CreateFunction",
                                                        "lambda:InvokeFunction"])))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {Snapshot.arn(A, "policy", "mixed"): "pass",
                                       Snapshot.arn(A, "policy", "mixed-with-invoke"): "fail"}
    reason = verdicts(db, LOGIC, FW)[(FW, ID, A, Snapshot.arn(A, "policy", "mixed-with-invoke"))][1]
    assert "lambda:CreateFunction + lambda:InvokeFunction" in reason
    assert "ec2:RunInstances" not in reason and "iam:CreateAccessKey" not in reason
