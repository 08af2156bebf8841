"""The account data sets: one entry each, and everything else derives its lists from here.

An entry says what the extractor collects (the API calls and the IAM actions the audit role needs
for them), which data sets it is collected after (their payloads feed its collection or its
transform), and which staging tables of iam_stage its transform fills, with their columns in COPY
order. The extractor (extract.DATASETS and its collectors), the transform (transform.COLUMNS,
DATASET_TABLES, transform_dataset), the loader, the lineage and the check-test builder read it; the
audit role's policy (policies/audit-role-permissions.json) and the CloudFormation role
(deploy/cloudformation/audit-role.yaml) are written from it (`make policies`), and the staging DDL
of sql/migrations is compared with it by tests/unit/test_datasets.py. docs/adding-a-data-set.md says
what a new data set touches.

Organisation-level data sets (collected once per run with the discovery credentials) are
ingest/organization.py's: they are not per account and have their own policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Dataset:
    name: str
    calls: tuple[str, ...]                       # the API operations that collect it (service:Operation)
    actions: tuple[str, ...]                     # the IAM actions those calls need
    tables: dict[str, tuple[str, ...]]           # iam_stage table -> columns after (snapshot_date, account_id)
    after: tuple[str, ...] = ()                  # collected after these; not collected when one of them failed
    reads: tuple[str, ...] = ()                  # payloads of other data sets its transform is given (keywords)
    # (error_code, message) recorded when a data set of `after` could not be collected
    unavailable: tuple[str, str] | None = field(default=None)
    # `make preflight`'s cheapest reads proving the role may collect it: (IAM action, boto3 client,
    # method, keyword arguments); empty: iam_audit.preflight has its own (it needs another answer)
    probes: tuple[tuple[str, str, str, dict], ...] = ()


DATASETS: tuple[Dataset, ...] = (
    Dataset(
        "credential_report",
        calls=("iam:GenerateCredentialReport", "iam:GetCredentialReport"),
        actions=("iam:GenerateCredentialReport", "iam:GetCredentialReport"),
        tables={"credential_report": (
            "user_name", "arn", "is_root", "generated_time", "user_creation_time", "password_enabled",
            "password_last_used", "password_last_changed", "password_next_rotation", "mfa_active",
            "access_key_1_active", "access_key_1_last_rotated", "access_key_1_last_used_date",
            "access_key_1_last_used_region", "access_key_1_last_used_service",
            "access_key_2_active", "access_key_2_last_rotated", "access_key_2_last_used_date",
            "access_key_2_last_used_region", "access_key_2_last_used_service",
            "cert_1_active", "cert_1_last_rotated", "cert_2_active", "cert_2_last_rotated",
        )},
        probes=(("iam:GenerateCredentialReport", "iam", "generate_credential_report", {}),),
    ),
    Dataset(
        "authorization_details",
        calls=("iam:GetAccountAuthorizationDetails",),
        actions=("iam:GetAccountAuthorizationDetails",),
        tables={
            "users": ("arn", "user_name", "user_id", "path", "create_date", "permissions_boundary_arn", "tags"),
            "groups": ("arn", "group_name", "group_id", "path", "create_date"),
            "group_memberships": ("user_arn", "group_name"),
            "roles": (
                "arn", "role_name", "role_id", "path", "create_date", "assume_role_policy", "role_last_used_date",
                "role_last_used_region", "permissions_boundary_arn", "tags",
            ),
            "managed_policies": (
                "arn", "policy_name", "policy_id", "path", "is_aws_managed", "attachment_count",
                "permissions_boundary_usage_count", "is_attachable", "default_version_id", "create_date",
                "update_date", "document",
            ),
            "policy_attachments": ("entity_type", "entity_arn", "entity_name", "policy_arn", "policy_name"),
            "inline_policies": ("entity_type", "entity_arn", "entity_name", "policy_name", "document"),
        },
    ),
    Dataset(
        "password_policy",
        calls=("iam:GetAccountPasswordPolicy",),
        actions=("iam:GetAccountPasswordPolicy",),
        tables={"password_policy": (
            "has_policy", "minimum_password_length", "require_symbols", "require_numbers",
            "require_uppercase_characters", "require_lowercase_characters", "allow_users_to_change_password",
            "expire_passwords", "max_password_age", "password_reuse_prevention", "hard_expiry",
        )},
        probes=(("iam:GetAccountPasswordPolicy", "iam", "get_account_password_policy", {}),),
    ),
    Dataset(
        "account_summary",
        calls=("iam:GetAccountSummary",),
        actions=("iam:GetAccountSummary",),
        tables={"account_summary": (
            "account_mfa_enabled", "account_access_keys_present", "summary", "account_password_present",
        )},
        probes=(("iam:GetAccountSummary", "iam", "get_account_summary", {}),),
    ),
    Dataset(
        "virtual_mfa_devices",
        calls=("iam:ListVirtualMFADevices",),
        actions=("iam:ListVirtualMFADevices",),
        tables={"virtual_mfa_devices": ("serial_number", "user_arn", "user_name", "enable_date")},
        probes=(("iam:ListVirtualMFADevices", "iam", "list_virtual_mfa_devices", {"MaxItems": 1}),),
    ),
    Dataset(
        "access_keys",
        calls=("iam:ListAccessKeys",),
        actions=("iam:ListAccessKeys",),
        tables={"access_keys": (
            "user_name", "user_arn", "access_key_id", "status", "create_date", "last_used_date",
            "last_used_region", "last_used_service",
        )},
        # listed for the users the report shows with keys; last use and user ARNs come from the
        # report (and GetAccountAuthorizationDetails for users the report does not list)
        after=("credential_report",),
        reads=("credential_report", "authorization_details"),
        unavailable=("CredentialReportUnavailable",
                     "access keys are listed for the users the credential report shows with keys, and the "
                     "report could not be read"),
    ),
    Dataset(
        "server_certificates",
        calls=("iam:ListServerCertificates",),
        actions=("iam:ListServerCertificates",),
        tables={"server_certificates": (
            "arn", "certificate_name", "certificate_id", "path", "upload_date", "expiration",
        )},
        probes=(("iam:ListServerCertificates", "iam", "list_server_certificates", {"MaxItems": 1}),),
    ),
    Dataset(
        "regions",
        calls=("ec2:DescribeRegions",),
        actions=("ec2:DescribeRegions",),
        tables={"regions": ("region_name", "opt_in_status")},
        probes=(("ec2:DescribeRegions", "ec2", "describe_regions", {}),),
    ),
    Dataset(
        "access_analyzers",
        calls=("access-analyzer:ListAnalyzers",),   # once per enabled region
        actions=("access-analyzer:ListAnalyzers",),
        tables={
            "access_analyzers": ("region_name", "analyzer_arn", "analyzer_name", "analyzer_type", "status"),
            "access_analyzer_regions": ("region_name", "status", "error_code", "error_message", "analyzer_count"),
        },
        after=("regions",),
        unavailable=("RegionsUnavailable", "the enabled regions could not be listed"),
        probes=(("access-analyzer:ListAnalyzers", "accessanalyzer", "list_analyzers", {"maxResults": 1}),),
    ),
    Dataset(
        "alternate_contacts",
        calls=("account:GetAlternateContact",),
        actions=("account:GetAlternateContact",),
        tables={"alternate_contacts": ("contact_type", "is_set", "contact_name", "email_address", "title")},
        probes=(("account:GetAlternateContact", "account", "get_alternate_contact",
                 {"AlternateContactType": "SECURITY"}),),
    ),
    Dataset(
        "identity_providers",
        calls=("iam:ListSAMLProviders", "iam:ListOpenIDConnectProviders"),
        actions=("iam:ListSAMLProviders", "iam:ListOpenIDConnectProviders"),
        tables={"identity_providers": ("arn", "provider_type", "create_date", "valid_until")},
        probes=(("iam:ListSAMLProviders", "iam", "list_saml_providers", {}),
                ("iam:ListOpenIDConnectProviders", "iam", "list_open_id_connect_providers", {})),
    ),
)

BY_NAME: dict[str, Dataset] = {d.name: d for d in DATASETS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
# staging table -> its columns after (snapshot_date, account_id), in COPY order
COLUMNS: dict[str, tuple[str, ...]] = {table: columns for d in DATASETS for table, columns in d.tables.items()}
# data set -> the staging tables it fills
DATASET_TABLES: dict[str, tuple[str, ...]] = {d.name: tuple(d.tables) for d in DATASETS}


def _check() -> None:
    """The registry's own consistency, at import: a mistake here fails every test and the DAG import."""
    for d in DATASETS:
        for other in (*d.after, *d.reads):
            if other not in BY_NAME or other == d.name:
                raise ValueError(f"data set {d.name}: unknown data set {other!r} in after/reads")
        if len(d.after) > 1:
            raise ValueError(f"data set {d.name}: collected after one data set at most")
        if d.after and d.unavailable is None:
            raise ValueError(f"data set {d.name} is collected after {d.after}: say what is recorded when they fail")
        for dependency in d.after:
            if BY_NAME[dependency].after:
                raise ValueError(f"data set {d.name}: {dependency} is itself collected after another data set")
    tables = [t for d in DATASETS for t in d.tables]
    if len(tables) != len(set(tables)):
        raise ValueError("a staging table is filled by two data sets")


_check()


# ---- the audit role's policy, written from the registry ------------------------------------

# Statement ids of the audit role's policy: IAM's own reads, then the other services'.
_IAM_SID, _OTHER_SID = "ReadIamStateAccountWide", "ReadSecurityContactRegionsAndAnalyzers"


def audit_role_actions() -> list[str]:
    """Every IAM action the data sets need, once each, in registry order."""
    return list(dict.fromkeys(a for d in DATASETS for a in d.actions))


def audit_role_policy() -> dict:
    """The audit role's permissions (policies/audit-role-permissions.json): exactly the data sets' actions."""
    actions = audit_role_actions()
    statements = [
        {"Sid": _IAM_SID, "Effect": "Allow", "Action": [a for a in actions if a.startswith("iam:")],
         "Resource": "*"},
        {"Sid": _OTHER_SID, "Effect": "Allow", "Action": [a for a in actions if not a.startswith("iam:")],
         "Resource": "*"},
    ]
    return {"Version": "2012-10-17", "Statement": [s for s in statements if s["Action"]]}
