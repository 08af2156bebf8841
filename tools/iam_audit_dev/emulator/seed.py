"""Seed the deterministic demo organisation into a running emulator (runs inside the server).

Organisation and member accounts are created through the real AWS API (boto3 against the
emulator itself); IAM content is written straight into moto's backend objects, which is
what makes 2,000 accounts feasible and lets us backdate every timestamp.
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta
from typing import Any

from . import state
from .seed_hygiene import seed_hygiene

MANAGEMENT_ACCOUNT_ID = "123456789012"
PROFILES = ("strong", "weak", "none")
# Member k (1-based; the management account is index 0) gets PROFILES[k % 3]:
# weak, none, strong, weak, ...  The names below follow that cycle.
MEMBER_NAMES = (
    "dev-sandbox",  # weak
    "legacy-apps",  # none
    "prod-core",  # strong
    "staging-web",  # weak
    "old-experiments",  # none
    "prod-data",  # strong
    "dev-analytics",  # weak
    "marketing-legacy",  # none
    "security-tooling",  # strong
    "test-integration",  # weak
    "archive-2019",  # none
    "log-archive",  # strong
)
BASE_USERS = (
    "alice-admin",
    "bob-nomfa",
    "carol-stale",
    "dave-newhire",
    "svc-deploy",
    "svc-legacy",
    "svc-two-keys",
    "svc-unused",
)

ADMIN_DOC = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
DEPLOY_DOC = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["codedeploy:*", "s3:PutObject", "s3:GetObject"],
                "Resource": "*",
            }
        ],
    }
)
S3_GET_DOC = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
)
BILLING_RO_DOC = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["aws-portal:ViewBilling", "ce:Get*", "budgets:ViewBudget"],
                "Resource": "*",
            }
        ],
    }
)
APP_INLINE_DOC = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["sqs:SendMessage", "sqs:ReceiveMessage"],
                "Resource": "*",
            }
        ],
    }
)
EC2_TRUST_DOC = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
SAML_METADATA = (
    '<?xml version="1.0"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
    'entityID="https://idp.example.com/saml"><md:IDPSSODescriptor '
    'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></md:EntityDescriptor>'
)
FAKE_CERT = (
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUemulatorcertificate0000000000000wCgYIKoZIzj0EAwIw\n"
    "-----END CERTIFICATE-----"
)
FAKE_KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAemulatorkey\n-----END PRIVATE KEY-----"

AWS_POLICY = "arn:aws:iam::aws:policy/"


def _support_policy_arn() -> str:
    return AWS_POLICY + "AWSSupportAccess"


def _trust_doc(principal_account: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{principal_account}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


def reset_world() -> None:
    """Forget every moto resource and every emulator-side state."""
    from moto.moto_api._internal.models import moto_api_backend

    from . import middleware, organization, patches

    moto_api_backend.reset()
    state.reset_all()
    organization.reset()
    middleware._ACCOUNT_CACHE.clear()
    patches.clear_caches()


def member_name(i: int) -> str:
    if i < len(MEMBER_NAMES):
        return MEMBER_NAMES[i]
    return f"member-{i + 1:04d}"


def profile_for_member(i: int) -> str:
    """Profile of the i-th member (0-based); account index = i + 1 (management is 0)."""
    return PROFILES[(i + 1) % 3]


def _user_names(n: int) -> list[str]:
    names = list(BASE_USERS[:n])
    for k in range(len(BASE_USERS), n):
        names.append(f"user-{k - len(BASE_USERS) + 1:03d}")
    return names


class AccountSeeder:
    """Populate one account through moto's IAM backend objects."""

    def __init__(self, account_id: str, profile: str, mgmt_id: str, now: datetime,
                 regions: list[str]):
        from moto.iam.models import AccessKeyLastUsed, iam_backends

        self.account_id = account_id
        self.profile = profile
        self.mgmt_id = mgmt_id
        self.now = now
        self.regions = regions
        self.iam = iam_backends[account_id]["global"]
        self._last_used_cls = AccessKeyLastUsed

    def ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)

    # -- helpers
    def user(self, name: str, created_days: float) -> Any:
        u = self.iam.create_user(region_name="us-east-1", user_name=name, path="/")
        u.create_date = self.ago(created_days)
        return u

    def password(self, name: str, changed_days: float, last_used_days: float | None) -> None:
        u = self.iam.create_login_profile(name, "Emulat0r!Passw0rd#")
        u.password_last_changed = self.ago(changed_days)
        u.password_last_used = None if last_used_days is None else self.ago(last_used_days)

    def mfa(self, name: str, enabled_days: float) -> None:
        dev = self.iam.create_virtual_mfa_device(name, "/")
        self.iam.enable_mfa_device(name, dev.serial_number, "123456", "654321")
        dev.enable_date = self.ago(enabled_days)
        self.iam.users[name].mfa_devices[dev.serial_number].enable_date = self.ago(enabled_days)

    def key(self, name: str, created_days: float, used_days: float | None, active: bool = True,
            service: str = "s3", region: str = "us-east-1") -> Any:
        k = self.iam.create_access_key(name, status="Active" if active else "Inactive")
        k.create_date = self.ago(created_days)
        k.last_used = (
            None
            if used_days is None
            else self._last_used_cls(self.ago(used_days), service, region)
        )
        return k

    def policy(self, name: str, doc: str, description: str = "") -> Any:
        p = self.iam.create_policy(
            description=description, path="/", policy_document=doc, policy_name=name, tags=[]
        )
        p.create_date = self.ago(400)
        p.update_date = self.ago(400)
        return p

    def role(self, name: str, trust: str, created_days: float, last_used_days: float | None,
             description: str = "") -> Any:
        r = self.iam.create_role(
            role_name=name,
            assume_role_policy_document=trust,
            path="/",
            permissions_boundary=None,
            description=description,
            tags=[],
            max_session_duration=None,
        )
        r.create_date = self.ago(created_days)
        if last_used_days is not None:
            r.last_used = self.ago(last_used_days)
            r.last_used_region = "us-east-1"
        return r

    # -- the account
    def run(self, users: int) -> None:
        iam = self.iam
        p = self.profile
        acct = self.account_id

        # password policy
        if p == "strong":
            iam.update_account_password_policy(
                allow_change_password=True, hard_expiry=False, max_password_age=90,
                minimum_password_length=14, password_reuse_prevention=24,
                require_lowercase_characters=True, require_numbers=True,
                require_symbols=True, require_uppercase_characters=True,
            )
        elif p == "weak":
            iam.update_account_password_policy(
                allow_change_password=True, hard_expiry=False, max_password_age=180,
                minimum_password_length=8, password_reuse_prevention=5,
                require_lowercase_characters=True, require_numbers=True,
                require_symbols=False, require_uppercase_characters=False,
            )

        # root user
        root = state.root_state(acct)
        root.created = self.ago(1500)
        root.keys = []
        root.password = True
        if p == "strong" and acct != self.mgmt_id:
            # members of a well-run organisation: root credentials removed centrally, so
            # no password, no MFA device and no keys (passes root MFA from CIS v5.0.0 on)
            root.mfa = "none"
            root.mfa_enable_date = None
            root.password_last_used = None
            root.password = False
        elif p == "strong":
            root.mfa = "hardware"
            root.mfa_enable_date = self.ago(900)
            root.password_last_used = self.ago(200)
        elif p == "weak":
            root.mfa = "virtual"
            root.mfa_enable_date = self.ago(700)
            root.password_last_used = self.ago(1)
            root.keys.append(state.RootKey(True, self.ago(400), self.ago(3), "us-east-1", "s3"))
        else:
            root.mfa = "none"
            root.password_last_used = None
            root.keys.append(state.RootKey(False, self.ago(500)))

        # shared customer policies
        full_admin = self.policy("FullAdminAccess", ADMIN_DOC, "Full admin for the admins group")
        self.policy("LegacyFullAdmin", ADMIN_DOC, "Unused legacy admin policy")
        billing = self.policy("ReadOnlyBilling", BILLING_RO_DOC, "Read-only billing")
        self.policy("DeployPolicy", DEPLOY_DOC, "Deployment permissions")

        # groups
        iam.create_group("admins", "/")
        iam.attach_group_policy(full_admin.arn, "admins")
        iam.create_group("developers", "/")
        iam.attach_group_policy(AWS_POLICY + "ReadOnlyAccess", "developers")
        if p == "none":
            iam.create_group("support", "/")
            iam.attach_group_policy(_support_policy_arn(), "support")

        # roles
        # organizations:CreateAccount already created it in member accounts
        org_role = next(
            (r for r in iam.roles.values() if r.name == "OrganizationAccountAccessRole"), None
        )
        if org_role is None:
            org_role = self.role(
                "OrganizationAccountAccessRole", _trust_doc(self.mgmt_id), 1500, 1,
                "Organization access role",
            )
        else:
            org_role.create_date = self.ago(1500)
            org_role.last_used = self.ago(1)
            org_role.last_used_region = "us-east-1"
        admin_arn = AWS_POLICY + "AdministratorAccess"
        if admin_arn not in org_role.managed_policies:
            iam.attach_role_policy(admin_arn, org_role.name)
        self.role("app-runtime", EC2_TRUST_DOC, 300, 5, "Application runtime role")
        iam.put_role_policy("app-runtime", "app-queue-access", APP_INLINE_DOC)
        iam.attach_role_policy(billing.arn, "app-runtime")
        if p == "strong":
            self.role("AWSSupportRole", _trust_doc(acct), 800, 30, "AWS Support access")
            iam.attach_role_policy(_support_policy_arn(), "AWSSupportRole")

        # users
        for name in _user_names(users):
            self.seed_user(name)

        # server certificates
        if p == "weak":
            c = iam.upload_server_certificate("legacy-cert", FAKE_CERT, FAKE_KEY)
            c.upload_date = self.ago(395)
            c.expiration = self.ago(30)
        elif p == "strong":
            c = iam.upload_server_certificate("web-cert", FAKE_CERT, FAKE_KEY)
            c.upload_date = self.ago(65)
            c.expiration = self.now + timedelta(days=300)

        # identity providers
        if p == "strong":
            iam.create_saml_provider("corp-idp", SAML_METADATA)

        # Access Analyzer
        if p == "strong":
            for region in self.regions:
                state.put_analyzer(acct, region, f"account-analyzer-{region}",
                                   created_at=self.ago(365))
        elif p == "weak":
            state.put_analyzer(acct, "us-east-1", "account-analyzer-us-east-1",
                               created_at=self.ago(365))

        # SECURITY alternate contact
        if p in ("strong", "none"):
            from moto.account.models import account_backends

            account_backends[acct]["aws"].put_alternate_contact(
                alternate_contact_type="SECURITY",
                email_address=f"security+{acct}@example.com",
                name="Security Team",
                phone_number="+1-555-0100",
                title="Security",
            )

    def seed_user(self, name: str) -> None:
        iam = self.iam
        if name == "alice-admin":
            self.user(name, 400)
            self.password(name, 80, 2)
            self.mfa(name, 399)
            iam.add_user_to_group("admins", name)
        elif name == "bob-nomfa":
            self.user(name, 300)
            self.password(name, 120, 10)
            iam.add_user_to_group("developers", name)
            if self.profile == "weak":
                iam.attach_user_policy(AWS_POLICY + "AWSCloudShellFullAccess", name)
        elif name == "carol-stale":
            self.user(name, 500)
            self.password(name, 200, 100)
            self.mfa(name, 499)
            iam.add_user_to_group("developers", name)
        elif name == "dave-newhire":
            self.user(name, 60)
            self.password(name, 60, None)
            self.mfa(name, 60)
            iam.add_user_to_group("developers", name)
        elif name == "svc-deploy":
            self.user(name, 400)
            self.key(name, 400, 1, service="s3")
            iam.attach_user_policy(f"arn:aws:iam::{self.account_id}:policy/DeployPolicy", name)
            iam.put_user_policy(name, "inline-s3", S3_GET_DOC)
        elif name == "svc-legacy":
            self.user(name, 600)
            self.key(name, 500, None, active=False)
            self.key(name, 30, 2, service="sts")
        elif name == "svc-two-keys":
            self.user(name, 200)
            self.key(name, 20, 4, service="ec2", region="eu-west-1")
            self.key(name, 10, 1, service="s3")
        elif name == "svc-unused":
            self.user(name, 100)
            self.key(name, 100, None)
        else:  # user-NNN: console user with MFA, used recently
            self.user(name, 200)
            self.password(name, 30, 1)
            self.mfa(name, 199)
            iam.add_user_to_group("developers", name)


def seed_organisation(
    endpoint_url: str, accounts: int = 5, users: int = 8, seed: int = 42
) -> dict[str, Any]:
    """Create the demo organisation; returns the manifest."""
    import boto3
    from botocore.config import Config

    t0 = time.monotonic()
    reset_world()
    # moto draws ids from its own mock_random: seeding it makes account ids repeatable.
    from moto.moto_api._internal import mock_random

    mock_random.seed(seed)
    random.seed(seed)
    now = state.utcnow()

    session = boto3.Session(
        aws_access_key_id="AKIAEMULATORSEED0000",
        aws_secret_access_key="emulator-secret",
        region_name="us-east-1",
    )
    cfg = Config(retries={"mode": "standard", "max_attempts": 3})
    org = session.client("organizations", endpoint_url=endpoint_url, config=cfg)
    ec2 = session.client("ec2", endpoint_url=endpoint_url, config=cfg)

    org.create_organization(FeatureSet="ALL")
    mgmt_id = org.describe_organization()["Organization"]["MasterAccountId"]

    from moto.organizations.models import organizations_backends

    org_backend = organizations_backends[mgmt_id]["aws"]
    for acc in org_backend.accounts:
        if acc.id == mgmt_id:
            acc.name = "management"
            acc.email = "management@example.com"

    manifest_accounts: list[dict[str, Any]] = [
        {"id": mgmt_id, "name": "management", "profile": "strong",
         "email": "management@example.com"}
    ]
    for i in range(accounts):
        name = member_name(i)
        email = f"{name}@example.com"
        resp = org.create_account(Email=email, AccountName=name)
        acct_id = resp["CreateAccountStatus"]["AccountId"]
        manifest_accounts.append(
            {"id": acct_id, "name": name, "profile": profile_for_member(i), "email": email}
        )

    regions = sorted(r["RegionName"] for r in ec2.describe_regions()["Regions"])

    for acc in manifest_accounts:
        AccountSeeder(acc["id"], acc["profile"], mgmt_id, now, regions).run(users)
        seed_hygiene(acc["id"], acc["profile"], now)
    from .seed_organization import seed_structure

    # last: the OU and policy ids it draws from moto's seeded random leave every IAM id as before
    structure = seed_structure(org, manifest_accounts, mgmt_id)

    manifest = {
        "management_account_id": mgmt_id,
        "accounts": manifest_accounts,
        "organization": structure,
        "users_per_account": users,
        "seed": seed,
        "seeded_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(time.monotonic() - t0, 2),
    }
    with state.LOCK:
        state.MANIFEST.clear()
        state.MANIFEST.update(manifest)
    # The seeding client's own calls are not audit traffic.
    state.reset_calls()
    return manifest
