"""deploy/cloudformation/: the audit role templates parse, reference only what they declare, and
embed exactly the shipped policies (src/iam_audit/policies/)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from iam_audit.config import ROLE_NAME_RE
from iam_audit.evaluate.policies import evaluate, load_policy

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "cloudformation"
ROLE, STACKSET = DEPLOY / "audit-role.yaml", DEPLOY / "audit-role-stackset.yaml"
BUCKET = DEPLOY / "raw-bucket.yaml"


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsic functions (!Ref, !Sub, !GetAtt, ...)."""


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.mark.parametrize("path", [ROLE, STACKSET, BUCKET], ids=lambda p: p.name)
def test_references_resolve(path):
    template = load(path)
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    pseudo = {"AWS::AccountId", "AWS::NoValue", "AWS::Partition", "AWS::Region", "AWS::StackName"}
    declared = set(template["Parameters"]) | set(template["Resources"]) | pseudo
    for node in _walk(template):
        if "Condition" in node and isinstance(node["Condition"], str):
            assert node["Condition"] in template.get("Conditions", {}), f"{path.name}: {node['Condition']}"
    for node in _walk(template):
        if "Ref" in node:
            assert node["Ref"] in declared, f"{path.name}: !Ref {node['Ref']} is not declared"
        if "Fn::GetAtt" in node:
            assert node["Fn::GetAtt"][0] in template["Resources"], f"{path.name}: {node}"
        if "Fn::Sub" in node:
            for name in re.findall(r"\$\{([^}!.]+)\}", node["Fn::Sub"]):
                assert name in declared, f"{path.name}: ${{{name}}} in !Sub is not declared"
    used = {n["Ref"] for n in _walk(template) if "Ref" in n} | {
        name for n in _walk(template) if "Fn::Sub" in n for name in re.findall(r"\$\{([^}!.]+)\}", n["Fn::Sub"])}
    assert set(template["Parameters"]) <= used, "every parameter is used"
    for name, parameter in template["Parameters"].items():
        if "AllowedPattern" in parameter and "Default" in parameter:
            assert re.fullmatch(parameter["AllowedPattern"], parameter["Default"]), name


def test_the_role_embeds_the_shipped_permissions_and_trust():
    role = load(ROLE)["Resources"]["AuditRole"]
    assert role["Type"] == "AWS::IAM::Role"
    props = role["Properties"]
    (inline,) = props["Policies"]
    assert inline["PolicyDocument"] == load_policy("audit-role-permissions.json")
    assert "ManagedPolicyArns" not in props
    shipped_trust = load_policy("audit-role-trust.json", PipelineAccountId="111122223333",
                                PipelineRoleName="pipeline", ExternalId="EXTERNAL")
    trust = props["AssumeRolePolicyDocument"]
    (statement,), (shipped,) = trust["Statement"], shipped_trust["Statement"]
    assert statement["Principal"] == {"AWS": {"Ref": "TrustedPrincipalArn"}}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}
    assert {k: v for k, v in statement.items() if k not in ("Principal", "Condition")} == \
        {k: v for k, v in shipped.items() if k not in ("Principal", "Condition")}
    assert props["RoleName"] == {"Ref": "RoleName"} and props["Path"] == {"Ref": "RolePath"}
    # what the role allows is what the pipeline reads, nothing that writes
    policy = [inline["PolicyDocument"]]
    assert evaluate(policy, "iam:GetAccountAuthorizationDetails").allowed
    assert not evaluate(policy, "iam:CreateUser").allowed


def test_parameters_accept_what_the_pipeline_accepts():
    params = load(ROLE)["Parameters"]
    assert params["ExternalId"]["NoEcho"] is True
    assert ROLE_NAME_RE.fullmatch(params["RoleName"]["Default"])
    principal = params["TrustedPrincipalArn"]["AllowedPattern"]
    for arn in ("arn:aws:iam::111122223333:role/iam-audit", "arn:aws:iam::111122223333:role/team/sub/iam-audit",
                "arn:aws-us-gov:iam::111122223333:user/audit", "arn:aws-cn:iam::111122223333:role/a"):
        assert re.fullmatch(principal, arn), arn
    for bad in ("111122223333", "arn:aws:iam::1111:role/x", "arn:aws:sts::111122223333:assumed-role/x/y"):
        assert not re.fullmatch(principal, bad), bad
    path = params["RolePath"]["AllowedPattern"]
    assert re.fullmatch(path, "/") and re.fullmatch(path, "/security/audit/")
    assert not re.fullmatch(path, "security") and not re.fullmatch(path, "/security")


def test_the_stackset_is_service_managed_and_covers_the_management_account():
    template = load(STACKSET)
    role_parameters = set(load(ROLE)["Parameters"])
    stackset = template["Resources"]["MemberAccountsStackSet"]
    assert stackset["Type"] == "AWS::CloudFormation::StackSet"
    props = stackset["Properties"]
    assert props["PermissionModel"] == "SERVICE_MANAGED"
    assert props["AutoDeployment"]["Enabled"] is True
    assert "CAPABILITY_NAMED_IAM" in props["Capabilities"]
    assert {p["ParameterKey"] for p in props["Parameters"]} == role_parameters
    targets = props["StackInstancesGroup"][0]["DeploymentTargets"]
    assert targets["OrganizationalUnitIds"] == {"Ref": "OrganizationalUnitIds"}
    management = template["Resources"]["ManagementAccountAuditRole"]
    assert management["Type"] == "AWS::CloudFormation::Stack"
    assert set(management["Properties"]["Parameters"]) == role_parameters
    assert management["Properties"]["TemplateURL"] == props["TemplateURL"] == {"Ref": "AuditRoleTemplateUrl"}
    assert template["Parameters"]["ExternalId"]["NoEcho"] is True


CFN_LINT = os.environ.get("IAM_AUDIT_CFN_LINT") or shutil.which("cfn-lint")


@pytest.mark.skipif(not CFN_LINT, reason="cfn-lint is not installed (pip install cfn-lint; or set IAM_AUDIT_CFN_LINT)")
def test_cfn_lint():
    result = subprocess.run([CFN_LINT, str(ROLE), str(STACKSET), str(BUCKET)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stackset_template_embeds_the_shipped_discovery_policy():
    """The discovery policy (organisation reads included) is the shipped one, the role ARN aside."""
    resource = load(STACKSET)["Resources"]["PipelineDiscoveryPolicy"]
    assert resource["Type"] == "AWS::IAM::ManagedPolicy"
    document = resource["Properties"]["PolicyDocument"]
    shipped = load_policy("pipeline-discovery.json", AuditRoleName="IamAuditReadOnly", Partition="aws",
                          AuditRolePath="/", OrganizationId="o-abcdefghij")
    assume = document["Statement"][-1]
    assert assume["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role${RolePath}${RoleName}"}
    assert assume["Condition"] == {"StringEquals": {"aws:ResourceOrgID": {"Ref": "OrganizationId"}}}
    rendered = [dict(st, Resource=shipped["Statement"][-1]["Resource"],
                     Condition=shipped["Statement"][-1]["Condition"]) if st is assume else st
                for st in document["Statement"]]
    assert {**document, "Statement": rendered} == shipped


def test_the_pipelines_default_role_is_the_one_the_templates_deploy():
    from iam_audit.config import DEFAULT_ROLE_NAME

    assert DEFAULT_ROLE_NAME == "IamAuditReadOnly"
    for path in (ROLE, STACKSET):
        assert load(path)["Parameters"]["RoleName"]["Default"] == DEFAULT_ROLE_NAME, path


def test_the_stackset_can_be_deployed_from_a_delegated_administrator_without_a_colliding_role():
    template = load(STACKSET)
    assert template["Parameters"]["CallAs"]["AllowedValues"] == ["SELF", "DELEGATED_ADMIN"]
    assert template["Parameters"]["CallAs"]["Default"] == "SELF"
    assert template["Resources"]["MemberAccountsStackSet"]["Properties"]["CallAs"] == {"Ref": "CallAs"}
    # the role in this account only when this account is the management account
    assert template["Conditions"]["InManagementAccount"] == {"Fn::Equals": [{"Ref": "CallAs"}, "SELF"]}
    assert template["Resources"]["ManagementAccountAuditRole"]["Condition"] == "InManagementAccount"
    assert template["Outputs"]["ManagementAccountRoleArn"]["Condition"] == "InManagementAccount"
    assert "activate-organizations-access" in template["Description"]


def test_the_raw_bucket_is_versioned_tls_only_encrypted_with_optional_object_lock():
    template = load(BUCKET)
    bucket = template["Resources"]["RawBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert template["Resources"]["RawBucket"]["DeletionPolicy"] == "Retain"
    lock = bucket["ObjectLockConfiguration"]["Fn::If"]
    assert lock[0] == "WithObjectLock" and lock[1]["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    statements = {s["Sid"]: s for s in template["Resources"]["RawBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"]}
    assert statements["RefuseRequestsWithoutTls"]["Effect"] == "Deny"
    assert statements["RefuseRequestsWithoutTls"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # the bucket policy, evaluated as the pipeline's evaluator does: plain HTTP refused, TLS 1.2 allowed on
    from iam_audit.evaluate.policies import evaluate

    policy = {"Statement": [{**s, "Resource": "*"} for s in statements.values() if s["Effect"] == "Deny"]
              + [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    for statement in policy["Statement"]:
        statement.pop("Principal", None)
        statement.pop("Sid", None)
    sealed = {"s3:x-amz-server-side-encryption": "AES256"}
    assert not evaluate([policy], "s3:GetObject", "*", {"aws:SecureTransport": False, "s3:TlsVersion": "1.2"}).allowed
    assert not evaluate([policy], "s3:GetObject", "*", {"aws:SecureTransport": True, "s3:TlsVersion": "1.1"}).allowed
    assert evaluate([policy], "s3:GetObject", "*", {"aws:SecureTransport": True, "s3:TlsVersion": "1.2"}).allowed
    assert not evaluate([policy], "s3:PutObject", "*", {"aws:SecureTransport": True, "s3:TlsVersion": "1.3"}).allowed
    assert evaluate([policy], "s3:PutObject", "*",
                    {"aws:SecureTransport": True, "s3:TlsVersion": "1.3", **sealed}).allowed
