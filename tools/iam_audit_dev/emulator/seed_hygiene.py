"""Demo content for the iam_hygiene checks (src/iam_audit/sql/checks/hygiene_*.sql), seeded per profile.

Runs inside the emulator after seed.AccountSeeder has populated an account. It only adds
roles, groups, inline policies, group memberships and one attachment of AWS-managed
AmazonEC2FullAccess (not "*:*": the CIS full-admin control passes it), never users,
access keys or customer-managed policies, so what the CIS checks find in the demo
organisation (and the tests that pin it) is unchanged. Together with the base seed every hygiene check has a
passing and a failing resource:

  check                   fails on                                   passes on
  privilege_escalation    FullAdminAccess; weak ci-builder (PassRole  ReadOnlyBilling, app-runtime's
                          + RunInstances); none legacy-ops NotAction  inline, strong partner-readonly
  inline_admin            weak group ops-break-glass                  every other inline policy
  role_trusts_anyone      none public-assume (Principal "*"); weak    strong partner-readonly (org id)
                          metrics-exporter ("*" + SecureTransport)
  cross_account_trust     weak vendor-audit, none legacy-cross-acct.  OrganizationAccountAccessRole, ...
  console_admin_no_mfa    weak bob-nomfa (via ops-break-glass)        alice-admin (MFA), the others
  old_access_keys         svc-deploy's 400-day key (base seed)        svc-two-keys' keys
  unused_roles            weak vendor-audit, none public-assume       app-runtime, ci-builder, ...
  service_wildcards       DeployPolicy (codedeploy:*), ops-break-glass ReadOnlyBilling (ce:Get*)
                          no: "*" is not a service wildcard
  principal_escalation    weak batch-launcher (inline PassRole +      app-runtime, metrics-exporter
                          AWS-managed AmazonEC2FullAccess), ci-builder
  external_id_trust       none data-share ("*" + sts:ExternalId)      vendor-audit (names its account)
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

# Accounts outside any demo organisation (moto draws member ids at random; these are fixed).
VENDOR_ACCOUNT_ID = "999988887777"
FORMER_PARTNER_ACCOUNT_ID = "210987654321"


def _doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _trust(principal: Any, condition: dict | None = None) -> str:
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return _doc(statement)


BREAK_GLASS_DOC = _doc({"Sid": "BreakGlass", "Effect": "Allow", "Action": "*", "Resource": "*"})
CI_LAUNCH_DOC = _doc(
    {"Sid": "Artifacts", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"},
    {"Sid": "LaunchBuilders", "Effect": "Allow", "Action": ["iam:PassRole", "ec2:RunInstances"], "Resource": "*"},
)
LEGACY_OPS_DOC = _doc(
    {"Sid": "EverythingButIam", "Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}
)
PARTNER_READ_DOC = _doc(
    {"Effect": "Allow", "Action": ["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"], "Resource": "*"}
)
SERVICE_TRUST = _trust({"Service": "support.amazonaws.com"})
# iam:PassRole on every role, harmless alone; beside AWS-managed AmazonEC2FullAccess on the
# same role it launches instances with any role (hygiene_principal_escalation).
PASS_ANY_ROLE_DOC = _doc({"Sid": "PassAnyRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"})
EC2_FULL_ACCESS_ARN = "arn:aws:iam::aws:policy/AmazonEC2FullAccess"


def _role(iam: Any, name: str, trust: str, now: datetime, created_days: float,
          last_used_days: float | None, path: str = "/") -> Any:
    role = iam.create_role(
        role_name=name,
        assume_role_policy_document=trust,
        path=path,
        permissions_boundary=None,
        description="",
        tags=[],
        max_session_duration=None,
    )
    role.create_date = now - timedelta(days=created_days)
    if last_used_days is not None:
        role.last_used = now - timedelta(days=last_used_days)
        role.last_used_region = "us-east-1"
    return role


def seed_hygiene(account_id: str, profile: str, now: datetime) -> None:
    """Add the hygiene demo content to one seeded account ('strong', 'weak' or 'none' profile)."""
    from moto.iam.models import iam_backends

    iam = iam_backends[account_id]["global"]

    # Every profile: a service-linked role, never used (hygiene_unused_roles skips it).
    _role(iam, "AWSServiceRoleForSupport", SERVICE_TRUST, now, 900, None,
          path="/aws-service-role/support.amazonaws.com/")

    if profile == "strong":
        # A partner role open to any principal, but only from one organisation: passes.
        _role(iam, "partner-readonly", _trust({"AWS": "*"}, {"StringEquals": {"aws:PrincipalOrgID": "o-demo0000"}}),
              now, 300, 2)
        iam.put_role_policy("partner-readonly", "metrics-read", PARTNER_READ_DOC)
    elif profile == "weak":
        # Inline "*:*" on a group, and a console user without MFA in it.
        iam.create_group("ops-break-glass", "/")
        iam.put_group_policy("ops-break-glass", "break-glass-admin", BREAK_GLASS_DOC)
        if "bob-nomfa" in iam.users:
            iam.add_user_to_group("ops-break-glass", "bob-nomfa")
        # A CI role that can launch instances with any role: PassRole + RunInstances.
        _role(iam, "ci-builder", _trust({"AWS": f"arn:aws:iam::{account_id}:root"}), now, 200, 3)
        iam.put_role_policy("ci-builder", "ci-launch", CI_LAUNCH_DOC)
        # PassRole in its own inline policy, EC2 from AWS-managed AmazonEC2FullAccess: neither
        # policy escalates alone (IH.1 passes both), the role does (IH.10).
        _role(iam, "batch-launcher", _trust({"AWS": f"arn:aws:iam::{account_id}:root"}), now, 150, 1)
        iam.put_role_policy("batch-launcher", "pass-any-role", PASS_ANY_ROLE_DOC)
        iam.attach_role_policy(EC2_FULL_ACCESS_ARN, "batch-launcher")
        # Open to every AWS account, with a condition that does not say who calls.
        _role(iam, "metrics-exporter",
              _trust({"AWS": "*"}, {"Bool": {"aws:SecureTransport": "true"}}), now, 120, 4)
        iam.put_role_policy("metrics-exporter", "metrics-read", PARTNER_READ_DOC)
        # A vendor account outside the organisation, trusted but never used.
        _role(iam, "vendor-audit",
              _trust({"AWS": f"arn:aws:iam::{VENDOR_ACCOUNT_ID}:root"}, {"StringEquals": {"sts:ExternalId": "v-1"}}),
              now, 200, None)
    else:
        # Any AWS account that learns the external id can assume it.
        _role(iam, "data-share", _trust({"AWS": "*"}, {"StringEquals": {"sts:ExternalId": "share-2024"}}),
              now, 400, 10)
        iam.put_role_policy("data-share", "metrics-read", PARTNER_READ_DOC)
        # Anyone can assume it, and nobody has for months.
        _role(iam, "public-assume", _trust("*"), now, 700, 120)
        # A former partner's deployer still trusted, with an "everything but IAM" policy.
        _role(iam, "legacy-cross-account",
              _trust({"AWS": [f"arn:aws:iam::{FORMER_PARTNER_ACCOUNT_ID}:role/old-deployer"]}), now, 1000, 5)
        iam.put_role_policy("legacy-cross-account", "legacy-ops", LEGACY_OPS_DOC)
