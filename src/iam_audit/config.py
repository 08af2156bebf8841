"""Run configuration from Airflow Variables, validated before any AWS call.

Every problem is reported together, naming the variable, the bad value and what
is expected, so an operator can fix the configuration in one go.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

VAR_BUCKET = "iam_audit_bucket"
VAR_ROLE_NAME = "iam_audit_role_name"
VAR_ROLE_PATH = "iam_audit_role_path"
VAR_EXTERNAL_ID = "iam_audit_external_id"
VAR_ACCOUNTS = "iam_audit_accounts"
VAR_KMS_KEY_ID = "iam_audit_kms_key_id"
VAR_PREFIX = "iam_audit_prefix"
VAR_MAX_ACCOUNT_DROP = "iam_audit_max_account_drop_percent"
VAR_RETENTION_DAYS = "iam_audit_retention_days"
VAR_ACCOUNTS_PER_TASK = "iam_audit_accounts_per_task"
# Optional: the region of the pipeline's own account whose Security Hub receives the findings (unset: off).
VAR_SECURITYHUB_REGION = "iam_audit_securityhub_region"
VAR_ALLOW_ORG_ACCESS_ROLE = "iam_audit_allow_organization_access_role"
VAR_BUCKET_OWNER = "iam_audit_bucket_owner"
VAR_ALLOW_UNHASHED = "iam_audit_allow_unhashed_manifests"

# The dedicated read-only role of deploy/cloudformation/ (its RoleName default): one name everywhere.
DEFAULT_ROLE_NAME = "IamAuditReadOnly"
# Organizations' administrator role: it trusts the management account without an ExternalId, so anyone
# holding the pipeline's credentials could assume it without the session policy the pipeline sends.
ORGANIZATION_ACCESS_ROLE = "OrganizationAccountAccessRole"
TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})
DEFAULT_PREFIX = "iam"
DEFAULT_ROLE_PATH = "/"
# A full run auditing this share of the previous snapshot's accounts fewer fails loudly and keeps their history.
DEFAULT_MAX_ACCOUNT_DROP_PERCENT = 30.0
# One mapped extract task per account by default; larger organisations may batch (docs/performance.md).
MAX_ACCOUNTS_PER_TASK = 1000

ACCOUNT_ID_RE = re.compile(r"^[0-9]{12}$")
# IAM role names: 1-64 of letters, digits and + = , . @ _ -
ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$", re.ASCII)
# IAM paths: "/" or "/" + printable ASCII + "/", at most 512 characters
ROLE_PATH_RE = re.compile(r"^(/|/[\x21-\x7E]+/)$")
# External ids: 2-1224 of letters, digits and + = , . @ : / -
EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}$", re.ASCII)
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
PREFIX_RE = re.compile(r"^[A-Za-z0-9!_.*'()/-]{1,200}$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")


class ConfigError(ValueError):
    """The pipeline's configuration is invalid; the message lists every problem."""


@dataclass(frozen=True)
class AuditConfig:
    bucket: str
    role_name: str = DEFAULT_ROLE_NAME
    external_id: str | None = None
    accounts: tuple[str, ...] | None = None  # None: discover through Organizations
    kms_key_id: str | None = None
    prefix: str = DEFAULT_PREFIX
    role_path: str = DEFAULT_ROLE_PATH
    max_account_drop_percent: float = DEFAULT_MAX_ACCOUNT_DROP_PERCENT
    retention_days: int | None = None  # None: keep the verdict history for ever
    accounts_per_task: int = 1
    securityhub_region: str | None = None  # None: findings are not sent to Security Hub
    bucket_owner: str | None = None  # None: the account of aws_default's credentials
    allow_unhashed_manifests: bool = False
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def role_arn(self, account_id: str, partition: str = "aws") -> str:
        """The audit role's ARN; the partition (aws, aws-us-gov, aws-cn) is the caller's."""
        return f"arn:{partition}:iam::{account_id}:role{self.role_path}{self.role_name}"


def parse_account_ids(raw, source: str = VAR_ACCOUNTS) -> tuple[tuple[str, ...], list[str]]:
    """Parse a JSON list of 12-digit account ids. Returns (ids, warnings); raises ConfigError."""
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{source} must be a JSON list of 12-digit account ids such as "
                f'["111122223333"], got {raw!r} (not JSON: {exc.msg})'
            ) from None
    else:
        value = raw
    if not isinstance(value, list):
        raise ConfigError(
            f"{source} must be a JSON list of 12-digit account ids such as "
            f'["111122223333"], got {type(value).__name__} {value!r}'
        )
    bad = [item for item in value if not (isinstance(item, str) and ACCOUNT_ID_RE.match(item))]
    if bad:
        raise ConfigError(
            f"{source} holds values that are not 12-digit account ids written as strings: "
            + ", ".join(repr(b) for b in bad[:10])
            + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        )
    if not value:
        raise ConfigError(f"{source} is an empty list: give at least one account id, or unset it to discover all")
    unique = tuple(dict.fromkeys(value))
    warnings = []
    if len(unique) != len(value):
        dupes = sorted({v for v in value if value.count(v) > 1})
        warnings.append(f"{source} lists {', '.join(dupes)} more than once; each account is audited once")
    return unique, warnings


def build_config(variables: dict) -> AuditConfig:
    """Validate raw Variable values (None when unset) into an AuditConfig."""
    problems: list[str] = []
    warnings: list[str] = []

    bucket = (variables.get(VAR_BUCKET) or "").strip()
    if not bucket:
        problems.append(f"Variable {VAR_BUCKET} is not set: set it to the S3 bucket that receives raw snapshots")
    elif not BUCKET_RE.match(bucket) or ".." in bucket:
        problems.append(
            f"Variable {VAR_BUCKET}={bucket!r} is not a valid S3 bucket name "
            "(3-63 lowercase letters, digits, dots and hyphens)"
        )

    role_name = (variables.get(VAR_ROLE_NAME) or DEFAULT_ROLE_NAME).strip()
    if not ROLE_NAME_RE.match(role_name):
        problems.append(
            f"Variable {VAR_ROLE_NAME}={role_name!r} is not a valid IAM role name "
            "(1-64 letters, digits and + = , . @ _ -; give the name, not the ARN)"
        )

    allow_admin_role = _flag(variables, VAR_ALLOW_ORG_ACCESS_ROLE, problems)
    allow_unhashed = _flag(variables, VAR_ALLOW_UNHASHED, problems)
    if allow_unhashed:
        warnings.append(f"{VAR_ALLOW_UNHASHED} is true: replays accept manifests of format 1, which record no "
                        "SHA-256, so their objects are loaded unverified")
    bucket_owner = (variables.get(VAR_BUCKET_OWNER) or "").strip() or None
    if bucket_owner is not None and not ACCOUNT_ID_RE.match(bucket_owner):
        problems.append(f"Variable {VAR_BUCKET_OWNER}={bucket_owner!r} is not a 12-digit account id (the account "
                        "that owns iam_audit_bucket; unset: the account of aws_default's credentials)")
    # IAM role names are unique regardless of case: organizationaccountaccessrole is the same role
    if role_name.lower() == ORGANIZATION_ACCESS_ROLE.lower():
        if not allow_admin_role:
            problems.append(
                f"Variable {VAR_ROLE_NAME}={role_name!r} names Organizations' administrator role, which trusts "
                "the management account without an ExternalId: anyone holding the pipeline's credentials can "
                "assume it with full rights. Deploy the read-only audit role of deploy/cloudformation/ "
                f"({DEFAULT_ROLE_NAME}) and unset {VAR_ROLE_NAME}, or set {VAR_ALLOW_ORG_ACCESS_ROLE}=true to "
                "accept the risk"
            )
        else:
            warnings.append(
                f"{VAR_ROLE_NAME}={role_name!r} is Organizations' administrator role, allowed by "
                f"{VAR_ALLOW_ORG_ACCESS_ROLE}: only the session policy the pipeline sends keeps its sessions "
                f"read-only, and anyone holding the pipeline's credentials can assume it without that policy; "
                f"deploy {DEFAULT_ROLE_NAME} from deploy/cloudformation/ instead"
            )

    role_path = (variables.get(VAR_ROLE_PATH) or DEFAULT_ROLE_PATH).strip()
    if len(role_path) > 512 or not ROLE_PATH_RE.match(role_path):
        problems.append(
            f"Variable {VAR_ROLE_PATH}={role_path!r} is not a valid IAM path: '/' or a path that starts and "
            "ends with '/' such as '/security/audit/' (printable ASCII, no spaces, at most 512 characters)"
        )

    external_id = variables.get(VAR_EXTERNAL_ID) or None
    try:
        check_external_id(external_id)
    except ConfigError as exc:
        problems.append(str(exc))

    accounts = None
    raw_accounts = variables.get(VAR_ACCOUNTS)
    if raw_accounts not in (None, ""):
        try:
            accounts, account_warnings = parse_account_ids(raw_accounts)
            warnings += account_warnings
        except ConfigError as exc:
            problems.append(f"Variable {exc}")

    prefix = (variables.get(VAR_PREFIX) or DEFAULT_PREFIX).strip().strip("/")
    if not PREFIX_RE.match(prefix):
        problems.append(f"Variable {VAR_PREFIX}={prefix!r} is not a usable S3 key prefix")

    max_drop = DEFAULT_MAX_ACCOUNT_DROP_PERCENT
    raw_drop = variables.get(VAR_MAX_ACCOUNT_DROP)
    if raw_drop not in (None, ""):
        try:
            max_drop = float(raw_drop)
        except (TypeError, ValueError):
            max_drop = -1.0
        if not 0 <= max_drop <= 100:
            problems.append(f"Variable {VAR_MAX_ACCOUNT_DROP}={raw_drop!r} must be a number from 0 to 100 "
                            "(the share of the previous snapshot's accounts a full run may lose; 100 disables)")
    retention_days = None
    raw_retention = variables.get(VAR_RETENTION_DAYS)
    if raw_retention not in (None, ""):
        text = str(raw_retention).strip()
        if not text.isdigit() or int(text) < 1:
            problems.append(
                f"Variable {VAR_RETENTION_DAYS}={raw_retention!r} is not a whole number of days >= 1 "
                "(how many days of verdict history to keep; unset it to keep everything)"
            )
        else:
            retention_days = int(text)

    accounts_per_task = 1
    raw_per_task = variables.get(VAR_ACCOUNTS_PER_TASK)
    if raw_per_task not in (None, ""):
        text = str(raw_per_task).strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_ACCOUNTS_PER_TASK:
            problems.append(
                f"Variable {VAR_ACCOUNTS_PER_TASK}={raw_per_task!r} is not a whole number from 1 to "
                f"{MAX_ACCOUNTS_PER_TASK} (accounts extracted by one mapped task; 1, the default, gives every "
                "account its own task)"
            )
        else:
            accounts_per_task = int(text)

    securityhub_region = (variables.get(VAR_SECURITYHUB_REGION) or "").strip() or None
    if securityhub_region and not REGION_RE.match(securityhub_region):
        problems.append(
            f"Variable {VAR_SECURITYHUB_REGION}={securityhub_region!r} is not an AWS region name such as "
            "eu-west-1 (the region whose Security Hub receives the findings; unset it to send none)"
        )

    if problems:
        raise ConfigError("Invalid iam_audit configuration:\n  - " + "\n  - ".join(problems))
    for warning in warnings:
        log.warning(warning)
    return AuditConfig(
        bucket=bucket,
        retention_days=retention_days,
        accounts_per_task=accounts_per_task,
        securityhub_region=securityhub_region,
        role_name=role_name,
        role_path=role_path,
        external_id=external_id,
        accounts=accounts,
        kms_key_id=variables.get(VAR_KMS_KEY_ID) or None,
        prefix=prefix,
        max_account_drop_percent=max_drop,
        bucket_owner=bucket_owner,
        allow_unhashed_manifests=allow_unhashed,
        warnings=tuple(warnings),
    )


def _flag(variables: dict, name: str, problems: list[str]) -> bool:
    raw = variables.get(name)
    if raw in (None, ""):
        return False
    word = str(raw).strip().lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        problems.append(f"Variable {name}={raw!r} must be true or false")
    return word in TRUE_WORDS


def check_external_id(external_id: str | None) -> str | None:
    """The external id, validated; its value is never part of a message."""
    if external_id is not None and not EXTERNAL_ID_RE.match(external_id):
        raise ConfigError(
            f"Variable {VAR_EXTERNAL_ID} is not a valid external id (2-1224 of letters, digits and + = , . @ : / -)"
        )
    return external_id


def read_variables() -> dict:
    """The raw values of the pipeline's Airflow Variables (None when unset); the external id is masked."""
    from airflow.sdk import Variable

    names = (VAR_BUCKET, VAR_ROLE_NAME, VAR_ROLE_PATH, VAR_EXTERNAL_ID, VAR_ACCOUNTS, VAR_KMS_KEY_ID, VAR_PREFIX,
             VAR_MAX_ACCOUNT_DROP, VAR_RETENTION_DAYS, VAR_ACCOUNTS_PER_TASK, VAR_SECURITYHUB_REGION,
             VAR_ALLOW_ORG_ACCESS_ROLE, VAR_BUCKET_OWNER, VAR_ALLOW_UNHASHED)
    values = {name: Variable.get(name, default=None) for name in names}
    mask_external_id(values[VAR_EXTERNAL_ID])
    return values


def read_external_id() -> str | None:
    """The external id, read (and masked in every log) only where AssumeRole needs it."""
    from airflow.sdk import Variable

    external_id = Variable.get(VAR_EXTERNAL_ID, default=None) or None
    mask_external_id(external_id)
    return check_external_id(external_id)


def mask_external_id(external_id: str | None) -> None:
    if external_id:
        from airflow.sdk.log import mask_secret

        mask_secret(external_id)  # no name: a name that is not "sensitive" would disable the mask
