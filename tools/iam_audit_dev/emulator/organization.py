"""Organisation-level APIs moto 5.2.5 does not serve, modelled on botocore's service models:
IAM's centralised root access (ListOrganizationsFeatures and its Enable/Disable operations,
query protocol) and the Organizations delegation policy (Put/Describe/DeleteResourcePolicy,
JSON protocol). Everything else of Organizations (OUs, SCPs, RCPs, targets, delegated
administrators) is moto's own.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from . import state

IAM_XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/"
FEATURE_ACTIONS = {
    "ListOrganizationsFeatures": (None, None),
    "EnableOrganizationsRootCredentialsManagement": ("RootCredentialsManagement", True),
    "EnableOrganizationsRootSessions": ("RootSessions", True),
    "DisableOrganizationsRootCredentialsManagement": ("RootCredentialsManagement", False),
    "DisableOrganizationsRootSessions": ("RootSessions", False),
}
POLICY_ACTIONS = ("DescribeResourcePolicy", "PutResourcePolicy", "DeleteResourcePolicy")
# organisation id -> enabled features; management account id -> delegation policy
FEATURES: dict[str, set[str]] = {}
RESOURCE_POLICIES: dict[str, str] = {}


def reset() -> None:
    with state.LOCK:
        FEATURES.clear()
        RESOURCE_POLICIES.clear()


def handles(service: str, action: str) -> bool:
    return (service == "iam" and action in FEATURE_ACTIONS) or (service == "organizations" and action in POLICY_ACTIONS)


def _organisation(account_id: str):
    """(organisation, management account id) the account belongs to, or (None, None)."""
    from moto.organizations.models import organizations_backends

    own = organizations_backends[account_id]["aws"].org
    if own is not None:
        return own, account_id
    if account_id in organizations_backends.master_accounts:
        master, partition = organizations_backends.master_accounts[account_id]
        return organizations_backends[master][partition].org, master
    return None, None


def _delegated_for(account_id: str, management: str, principal: str) -> bool:
    from moto.organizations.models import organizations_backends

    backend = organizations_backends[management]["aws"]
    return any(admin.account.id == account_id and principal in admin.services
               for admin in getattr(backend, "admins", []))


def serve(info, environ: dict[str, Any], start_response, error_response, reply):
    """The response to one of the modelled operations (info: the middleware's RequestInfo)."""
    organisation, management = _organisation(info.account_id)
    if info.service == "iam":
        if organisation is None:
            return reply(start_response, *error_response(
                info, "OrganizationNotFoundException",
                "The request failed because AWS Organizations is not in use.", 400))
        feature, enable = FEATURE_ACTIONS[info.action]
        is_management = info.account_id == management
        if not is_management and (enable is not None or not _delegated_for(info.account_id, management,
                                                                           "iam.amazonaws.com")):
            code = "CallerIsNotManagementAccountException" if enable is not None else \
                "AccountNotManagementOrDelegatedAdministratorException"
            return reply(start_response, *error_response(
                info, code, "The request was rejected because the account is not the management account "
                            "or a delegated administrator of the organization.", 400))
        with state.LOCK:
            features = FEATURES.setdefault(organisation.id, set())
            if feature is not None:
                (features.add if enable else features.discard)(feature)
            enabled = sorted(features)
        members = "".join(f"<member>{f}</member>" for f in enabled)
        body = (f'<{info.action}Response xmlns="{IAM_XMLNS}"><{info.action}Result>'
                f"<OrganizationId>{organisation.id}</OrganizationId><EnabledFeatures>{members}</EnabledFeatures>"
                f"</{info.action}Result><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
                f"</ResponseMetadata></{info.action}Response>").encode()
        return reply(start_response, 200, [("Content-Type", "text/xml")], body)

    if organisation is None:
        return reply(start_response, *error_response(
            info, "AWSOrganizationsNotInUseException",
            "Your account is not a member of an organization.", 400))
    if info.account_id != management and info.action != "DescribeResourcePolicy":
        return reply(start_response, *error_response(
            info, "AccessDeniedException", "You don't have permissions to access this resource.", 400))
    policy_id = f"rp-{organisation.id[2:10]}"
    summary = {"Id": policy_id,
               "Arn": f"arn:aws:organizations::{management}:resourcepolicy/{organisation.id}/{policy_id}"}
    with state.LOCK:
        if info.action == "PutResourcePolicy":
            raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            RESOURCE_POLICIES[management] = json.loads(raw or b"{}").get("Content", "")
        elif info.action == "DeleteResourcePolicy":
            if RESOURCE_POLICIES.pop(management, None) is None:
                return reply(start_response, *error_response(
                    info, "ResourcePolicyNotFoundException", "We can't find a resource policy request with "
                    "the ResourcePolicyId that you specified.", 400))
            return reply(start_response, 200, [("Content-Type", "application/x-amz-json-1.1")], b"{}")
        content = RESOURCE_POLICIES.get(management)
    if content is None:
        return reply(start_response, *error_response(
            info, "ResourcePolicyNotFoundException",
            "We can't find a resource policy request with the ResourcePolicyId that you specified.", 400))
    body = {"ResourcePolicy": {"ResourcePolicySummary": summary, "Content": content}}
    if info.action == "PutResourcePolicy":
        body = {"ResourcePolicy": {"ResourcePolicySummary": summary}}
    return reply(start_response, 200, [("Content-Type", "application/x-amz-json-1.1")], json.dumps(body).encode())
