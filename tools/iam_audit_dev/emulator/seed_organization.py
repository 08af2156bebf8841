"""The demo organisation's structure, through the real Organizations API: OUs by environment and
sensitivity, a guardrail SCP on every OU, an RCP on the root, a delegated administrator; one member
account ("legacy-apps" in the default demo) is left directly under the root, so only FullAWSAccess
applies to it. Centralised root access management stays disabled: the evidence of CIS v7.0.0
2.1.1 and 2.1.2 then has something to show.
"""

from __future__ import annotations

import json
from typing import Any

GUARDRAIL_SCP = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "DenyLeavingTheOrganization", "Effect": "Deny", "Action": "organizations:LeaveOrganization",
     "Resource": "*"},
    {"Sid": "ProtectSecurityServices", "Effect": "Deny",
     "Action": ["cloudtrail:StopLogging", "cloudtrail:DeleteTrail", "guardduty:DeleteDetector",
                "access-analyzer:DeleteAnalyzer"], "Resource": "*"}]})
DATA_PERIMETER_RCP = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "EnforceSecureTransport", "Effect": "Deny", "Principal": "*", "Action": ["s3:*", "sqs:*", "kms:*"],
     "Resource": "*", "Condition": {"BoolIfExists": {"aws:SecureTransport": "false"}}}]})


def _ou_for(name: str) -> str | None:
    if name.startswith(("security", "log-")):
        return "Security"
    if name.startswith("prod"):
        return "Prod"
    if name.startswith(("dev", "staging", "test")):
        return "NonProd"
    if name == "legacy-apps":
        return None  # left under the root: no guardrail beyond FullAWSAccess
    return "Sandbox"


def seed_structure(org, accounts: list[dict[str, Any]], management_id: str) -> dict[str, Any]:
    """Create the OU tree and policies; returns the manifest's "organization" entry."""
    root_id = org.list_roots()["Roots"][0]["Id"]
    org.enable_policy_type(RootId=root_id, PolicyType="RESOURCE_CONTROL_POLICY")

    def ou(name: str, parent: str) -> str:
        return org.create_organizational_unit(ParentId=parent, Name=name)["OrganizationalUnit"]["Id"]

    units = {"Security": ou("Security", root_id), "Workloads": ou("Workloads", root_id),
             "Sandbox": ou("Sandbox", root_id)}
    units["Prod"] = ou("Prod", units["Workloads"])
    units["NonProd"] = ou("NonProd", units["Workloads"])
    scp = org.create_policy(Name="GuardrailBaseline", Type="SERVICE_CONTROL_POLICY", Content=GUARDRAIL_SCP,
                            Description="Deny leaving the organisation and disabling security services")
    scp_id = scp["Policy"]["PolicySummary"]["Id"]
    for name in ("Security", "Workloads", "Sandbox"):
        org.attach_policy(PolicyId=scp_id, TargetId=units[name])
    rcp = org.create_policy(Name="DataPerimeterTransport", Type="RESOURCE_CONTROL_POLICY",
                            Content=DATA_PERIMETER_RCP, Description="Deny requests without TLS")
    org.attach_policy(PolicyId=rcp["Policy"]["PolicySummary"]["Id"], TargetId=root_id)

    placement, unguarded = {}, []
    for account in accounts:
        if account["id"] == management_id:
            continue
        target = _ou_for(account["name"])
        if target is None:
            unguarded.append(account["id"])
            continue
        org.move_account(AccountId=account["id"], SourceParentId=root_id, DestinationParentId=units[target])
        placement[account["id"]] = target

    members = [a for a in accounts if a["id"] != management_id]
    admin = next((a for a in members if a["name"].startswith("security")),
                 next((a for a in members if a["profile"] == "strong"), None))
    delegated = []
    if admin is not None:
        for principal in ("access-analyzer.amazonaws.com", "guardduty.amazonaws.com"):
            org.register_delegated_administrator(AccountId=admin["id"], ServicePrincipal=principal)
            delegated.append({"account_id": admin["id"], "service_principal": principal})
    return {"root_id": root_id, "organizational_units": units, "placement": placement,
            "unguarded_accounts": unguarded, "delegated_administrators": delegated,
            "root_credentials_management": False}
