"""deploy/cloudformation/: the audit role templates parse, reference only what they declare, and
embed exactly the shipped policies (include/policies/)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from iam_audit.config import ROLE_NAME_RE
from iam_audit.policies import evaluate, load_policy

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "cloudformation"
ROLE, STACKSET = DEPLOY / "audit-role.yaml", DEPLOY / "audit-role-stackset.yaml"


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


@pytest.mark.parametrize("path", [ROLE, STACKSET], ids=lambda p: p.name)
def test_references_resolve(path):
    template = load(path)
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    declared = set(template["Parameters"]) | set(template["Resources"])
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
    result = subprocess.run([CFN_LINT, str(ROLE), str(STACKSET)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pipelines_default_role_is_the_one_the_templates_deploy():
    from iam_audit.config import DEFAULT_ROLE_NAME

    assert DEFAULT_ROLE_NAME == "IamAuditReadOnly"
    for path in (ROLE, STACKSET):
        assert load(path)["Parameters"]["RoleName"]["Default"] == DEFAULT_ROLE_NAME, path
