"""Build staging fixtures for check tests: real rows in a real PostgreSQL.

The project's own check tests (tests/checks) and `python -m iam_audit.custom validate` (the fixtures
of a user's own controls, run_fixture_case below) share it.

Every account gets all data sets marked collected unless told otherwise, and
as_of (the extraction time that checks compute ages from) is fixed, so fixtures
can state ages in days exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from iam_audit.ingest.datasets import NAMES

SNAPSHOT = date(2026, 11, 1)
AS_OF = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)

# every account data set of the registry: fixtures mark them collected unless told otherwise
ALL_DATASETS = NAMES


def days_ago(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


def day_of(days: float) -> str:
    """days_ago(days) as the YYYY-MM-DD (UTC) that reasons print."""
    return days_ago(days).strftime("%Y-%m-%d")


def _insert(conn, table: str, row: dict) -> None:
    cols = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    values = [json.dumps(v) if isinstance(v, dict | list) and not table.endswith("accounts") else v
              for v in row.values()]
    conn.execute(f"INSERT INTO iam_stage.{table} ({cols}) VALUES ({marks})", values)  # noqa: S608


class Snapshot:
    def __init__(self, conn, snapshot_date: date = SNAPSHOT, as_of: datetime = AS_OF):
        self.conn = conn
        self.snapshot_date = snapshot_date
        self.as_of = as_of

    def _base(self, account_id: str) -> dict:
        return {"snapshot_date": self.snapshot_date, "account_id": account_id}

    def account(self, account_id: str, missing: dict | None = None, name: str | None = None) -> Snapshot:
        """An account; `missing` maps data set -> error code for data sets that were not collected."""
        missing = missing or {}
        _insert(self.conn, "accounts", {**self._base(account_id), "account_name": name or f"acct-{account_id}",
                                        "extracted_at": self.as_of})
        for dataset in ALL_DATASETS:
            if dataset in missing:
                _insert(self.conn, "extraction_status", {**self._base(account_id), "dataset": dataset,
                        "status": "error", "error_code": missing[dataset],
                        "error_message": f"{missing[dataset]} while reading {dataset}"})
            else:
                _insert(self.conn, "extraction_status", {**self._base(account_id), "dataset": dataset,
                                                         "status": "ok"})
        return self

    def row(self, table: str, account_id: str, **values) -> Snapshot:
        _insert(self.conn, table, {**self._base(account_id), **values})
        return self

    def user(self, account_id: str, name: str, *, password: bool = False, password_last_used=None,
             password_last_changed=None, created=None, mfa: bool = False, keys: tuple = (),
             is_root: bool = False, **columns) -> Snapshot:
        """A credential report row. keys: up to two dicts(active, last_rotated, last_used).

        `columns` overrides any credential_report column as stored (e.g. password_last_changed=None)."""
        arn = f"arn:aws:iam::{account_id}:root" if is_root else f"arn:aws:iam::{account_id}:user/{name}"
        values = {
            "user_name": "<root_account>" if is_root else name, "arn": arn, "is_root": is_root,
            "generated_time": self.as_of, "user_creation_time": created or days_ago(1000),
            "password_enabled": None if is_root else password,
            "password_last_used": password_last_used,
            "password_last_changed": None if is_root else (
                (password_last_changed or created or days_ago(1000)) if password else None),
            "mfa_active": mfa,
        }
        for slot in (1, 2):
            key = keys[slot - 1] if len(keys) >= slot else None
            values[f"access_key_{slot}_active"] = bool(key and key.get("active", True))
            values[f"access_key_{slot}_last_rotated"] = key.get("last_rotated") if key else None
            values[f"access_key_{slot}_last_used_date"] = key.get("last_used") if key else None
        return self.row("credential_report", account_id, **{**values, **columns})

    # --- IAM entities (authorization_details) -------------------------------------------------

    @staticmethod
    def arn(account_id: str, kind: str, name: str) -> str:
        """arn:aws:iam::<account>:<kind>/<name> (kind: user, group, role, policy, server-certificate)."""
        return f"arn:aws:iam::{account_id}:{kind}/{name}"

    def iam_user(self, account_id: str, name: str, created=None) -> Snapshot:
        """A row of iam_stage.users (GetAccountAuthorizationDetails UserDetailList)."""
        return self.row("users", account_id, arn=self.arn(account_id, "user", name), user_name=name,
                        user_id=f"AIDA{name.upper()}", path="/", create_date=created or days_ago(1000))

    def role(self, account_id: str, name: str) -> Snapshot:
        return self.row("roles", account_id, arn=self.arn(account_id, "role", name), role_name=name,
                        path="/", create_date=days_ago(1000))

    def group(self, account_id: str, name: str) -> Snapshot:
        return self.row("groups", account_id, arn=self.arn(account_id, "group", name), group_name=name,
                        path="/", create_date=days_ago(1000))

    def managed_policy(self, account_id: str, name: str, document: dict | None, *, aws_managed: bool = False,
                       attachments: int = 0, arn: str | None = None) -> Snapshot:
        """A managed policy; AWS-managed ones get arn:aws:iam::aws:policy/<name>."""
        if arn is None:
            arn = f"arn:aws:iam::aws:policy/{name}" if aws_managed else self.arn(account_id, "policy", name)
        return self.row("managed_policies", account_id, arn=arn, policy_name=name, path="/",
                        is_aws_managed=aws_managed, attachment_count=attachments,
                        permissions_boundary_usage_count=0, is_attachable=True, default_version_id="v1",
                        create_date=days_ago(500), update_date=days_ago(100), document=document)

    def attach(self, account_id: str, entity_type: str, entity_name: str, policy_arn: str) -> Snapshot:
        """A managed policy attached to a user, group or role (policy_attachments)."""
        return self.row("policy_attachments", account_id, entity_type=entity_type,
                        entity_arn=self.arn(account_id, entity_type, entity_name), entity_name=entity_name,
                        policy_arn=policy_arn, policy_name=policy_arn.rsplit("/", 1)[-1])

    def inline_policy(self, account_id: str, entity_type: str, entity_name: str, policy_name: str,
                      document: dict | None = None) -> Snapshot:
        return self.row("inline_policies", account_id, entity_type=entity_type,
                        entity_arn=self.arn(account_id, entity_type, entity_name), entity_name=entity_name,
                        policy_name=policy_name,
                        document=document or {"Version": "2012-10-17", "Statement": []})

    def trusting_role(self, account_id: str, name: str, trust: dict | None, *, created=None, last_used=None,
                      path: str = "/") -> Snapshot:
        """A role with a trust policy (assume_role_policy), creation and RoleLastUsed dates and a path."""
        return self.row("roles", account_id, arn=self.arn(account_id, "role", name), role_name=name,
                        path=path, create_date=created or days_ago(1000), assume_role_policy=trust,
                        role_last_used_date=last_used)

    def trusting_roles(self, account_id: str, cases: dict[str, tuple[str, dict | None]]) -> Snapshot:
        """One role per case of a trust-check fixture table {name: (expected status, trust policy)}."""
        for name, (_, document) in cases.items():
            self.trusting_role(account_id, name, document)
        return self

    def member_of(self, account_id: str, user_name: str, group_name: str) -> Snapshot:
        """The user is a member of the group (group_memberships)."""
        return self.row("group_memberships", account_id, user_arn=self.arn(account_id, "user", user_name),
                        group_name=group_name)

    def organization_account(self, account_id: str, name: str | None = None) -> Snapshot:
        """An account of the organisation as discovered for the snapshot (organization_accounts)."""
        return self.row("organization_accounts", account_id, account_name=name or f"org-{account_id}",
                        status="ACTIVE")

    # --- account-level data sets ------------------------------------------------------------------

    STRONG_PASSWORD_POLICY = {
        "minimum_password_length": 14, "require_symbols": True, "require_numbers": True,
        "require_uppercase_characters": True, "require_lowercase_characters": True,
        "allow_users_to_change_password": True, "expire_passwords": True, "max_password_age": 90,
        "password_reuse_prevention": 24, "hard_expiry": False,
    }

    def password_policy(self, account_id: str, **overrides) -> Snapshot:
        """A password policy that passes every CIS check, with `overrides` applied."""
        return self.row("password_policy", account_id, has_policy=True,
                        **{**self.STRONG_PASSWORD_POLICY, **overrides})

    def no_password_policy(self, account_id: str) -> Snapshot:
        """GetAccountPasswordPolicy answered NoSuchEntity."""
        return self.row("password_policy", account_id, has_policy=False)

    def account_summary(self, account_id: str, *, mfa: int | None = 1, root_keys: int | None = 0,
                        password_present: int | None = 1) -> Snapshot:
        """GetAccountSummary; password_present None: the response had no AccountPasswordPresent key."""
        summary = {"AccountMFAEnabled": mfa, "AccountAccessKeysPresent": root_keys, "Users": 1}
        if password_present is not None:
            summary["AccountPasswordPresent"] = password_present
        return self.row("account_summary", account_id, account_mfa_enabled=mfa,
                        account_access_keys_present=root_keys, account_password_present=password_present,
                        summary=summary)

    def virtual_mfa(self, account_id: str, serial_name: str, user_arn: str | None = None,
                    user_name: str | None = None) -> Snapshot:
        """A virtual MFA device arn:aws:iam::<account>:mfa/<serial_name>."""
        return self.row("virtual_mfa_devices", account_id,
                        serial_number=f"arn:aws:iam::{account_id}:mfa/{serial_name}",
                        user_arn=user_arn, user_name=user_name,
                        enable_date=days_ago(10) if user_arn else None)

    def access_key(self, account_id: str, user: str, key_id: str, *, status: str = "Active", created=None,
                   last_used=None) -> Snapshot:
        """A row of iam_stage.access_keys (ListAccessKeys + GetAccessKeyLastUsed)."""
        return self.row("access_keys", account_id, user_name=user,
                        user_arn=self.arn(account_id, "user", user),
                        access_key_id=key_id, status=status, create_date=created or days_ago(10),
                        last_used_date=last_used)

    def server_certificate(self, account_id: str, name: str, expiration) -> Snapshot:
        return self.row("server_certificates", account_id,
                        arn=self.arn(account_id, "server-certificate", name),
                        certificate_name=name, certificate_id=f"ASCA{name.upper()}", path="/",
                        upload_date=days_ago(400), expiration=expiration)

    def region(self, account_id: str, name: str,
               opt_in_status: str | None = "opt-in-not-required") -> Snapshot:
        return self.row("regions", account_id, region_name=name, opt_in_status=opt_in_status)

    def analyzer(self, account_id: str, region: str, *, status: str = "ACTIVE", name: str | None = None,
                 analyzer_type: str = "ACCOUNT") -> Snapshot:
        name = name or f"analyzer-{region}"
        return self.row("access_analyzers", account_id, region_name=region,
                        analyzer_arn=f"arn:aws:access-analyzer:{region}:{account_id}:analyzer/{name}",
                        analyzer_name=name, analyzer_type=analyzer_type, status=status)

    # --- organisation-level data sets (one set per snapshot date, not per account) ---------------

    ORG_DATASETS = ("organization_features", "organization_units", "organization_policies",
                    "organization_delegated_admins")

    def organization(self, *, features: tuple[str, ...] = ("RootCredentialsManagement",),
                     organization_id: str | None = "o-example0001", management: str | None = None,
                     missing: dict | None = None) -> Snapshot:
        """The date's organisation data sets: collected unless `missing` maps one to an error code;
        iam:ListOrganizationsFeatures answered with `features` (none: one row with feature NULL)."""
        missing = missing or {}
        base = {"snapshot_date": self.snapshot_date}
        for dataset in self.ORG_DATASETS:
            _insert(self.conn, "organization_datasets", {
                **base, "dataset": dataset, "status": "error" if dataset in missing else "ok",
                "error_code": missing.get(dataset),
                "error_message": f"{missing[dataset]} while reading {dataset}" if dataset in missing else None,
                "collected_at": self.as_of})
        if "organization_features" not in missing:
            for feature in features or (None,):
                _insert(self.conn, "organization_features",
                        {**base, "organization_id": organization_id, "feature": feature})
        if "organization_units" not in missing:
            _insert(self.conn, "organization_info", {**base, "organization_id": organization_id,
                                                     "management_account_id": management, "feature_set": "ALL"})
        return self

    def org_node(self, child_id: str, child_type: str, parent_id: str | None, name: str | None = None) -> Snapshot:
        """A root, OU or account of the OU tree (organization_parents)."""
        _insert(self.conn, "organization_parents", {"snapshot_date": self.snapshot_date, "child_id": child_id,
                                                    "child_type": child_type, "child_name": name or child_id,
                                                    "parent_id": parent_id})
        return self

    def org_policy(self, policy_id: str, name: str, targets: tuple[str, ...], *,
                   policy_type: str = "SERVICE_CONTROL_POLICY", aws_managed: bool = False) -> Snapshot:
        _insert(self.conn, "organization_policies", {"snapshot_date": self.snapshot_date, "policy_id": policy_id,
                                                     "policy_type": policy_type, "policy_name": name,
                                                     "aws_managed": aws_managed})
        for target in targets:
            _insert(self.conn, "organization_policy_targets", {
                "snapshot_date": self.snapshot_date, "policy_id": policy_id, "target_id": target,
                "target_type": "ROOT" if target.startswith("r-") else
                "ORGANIZATIONAL_UNIT" if target.startswith("ou-") else "ACCOUNT", "target_name": target})
        return self

    def delegated_admin(self, account_id: str, service_principal: str, name: str | None = None) -> Snapshot:
        _insert(self.conn, "organization_delegated_admins", {
            "snapshot_date": self.snapshot_date, "account_id": account_id, "account_name": name or account_id,
            "service_principal": service_principal, "delegation_enabled_date": self.as_of})
        return self

    def account_tags(self, account_id: str, **tags: str) -> Snapshot:
        """The account's tags (Organizations ListTagsForResource); marks the account_tags data set
        collected for the date."""
        self.tags_collected()
        for key, value in tags.items():
            _insert(self.conn, "account_tags", {**self._base(account_id), "key": key, "value": str(value)})
        return self

    def tags_collected(self, status: str = "ok", error_code: str | None = None) -> Snapshot:
        """Whether the date's account tags were read ('error': a check needing account_tags gives 'error')."""
        self.conn.execute(
            "INSERT INTO iam_stage.organization_datasets (snapshot_date, dataset, status, error_code, error_message, "
            "collected_at) VALUES (%s, 'account_tags', %s, %s, %s, %s) ON CONFLICT (snapshot_date, dataset) DO "
            "UPDATE SET status = EXCLUDED.status, error_code = EXCLUDED.error_code",
            (self.snapshot_date, status, error_code, f"{error_code} while reading account tags" if error_code
             else None, self.as_of))
        return self

    def commit(self) -> None:
        self.conn.commit()


def verdicts(conn, logic: str | None = None, framework: str | None = None) -> dict:
    """{(framework, check_id, account_id, resource_id): (status, reason)} of aws_policy_results."""
    sql = "SELECT framework, check_id, account_id, resource_id, status, reason FROM aws_policy_results WHERE true"
    params: list = []
    if logic:
        sql += " AND control_logic = %s"
        params.append(logic)
    if framework:
        sql += " AND framework = %s"
        params.append(framework)
    return {(f, c, a, r): (s, why) for f, c, a, r, s, why in conn.execute(sql, params).fetchall()}


def expected_role_statuses(account_id: str, cases: dict[str, tuple[str, dict | None]]) -> dict:
    """{role ARN: expected status} of a trust-check fixture table {name: (expected status, trust policy)}."""
    return {Snapshot.arn(account_id, "role", name): status for name, (status, _) in cases.items()}


def statuses(conn, logic: str, framework: str) -> dict:
    """{resource_id: status} for one logic and framework."""
    return {key[3]: value[0] for key, value in verdicts(conn, logic, framework).items()}


# --- fixture files (a custom control folder's fixtures/*.yaml) -----------------------------------------

# the Snapshot methods a fixture file may call by name (each item of a case's `staging` list)
FIXTURE_HELPERS = ("account", "user", "iam_user", "role", "group", "managed_policy", "attach", "inline_policy",
                   "trusting_role", "member_of", "organization_account", "password_policy", "no_password_policy",
                   "account_summary", "virtual_mfa", "access_key", "server_certificate", "region", "analyzer",
                   "organization", "org_node", "org_policy", "delegated_admin", "account_tags", "tags_collected")


def _fixture_value(value):
    """{days_ago: N} in a fixture file: that many days before the snapshot's extraction time."""
    if isinstance(value, dict) and set(value) == {"days_ago"}:
        return days_ago(float(value["days_ago"]))
    if isinstance(value, dict):
        return {k: _fixture_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fixture_value(v) for v in value]
    return value


def stage_fixture(conn, staging: list) -> Snapshot:
    """Insert a case's staging: a list of {helper: arguments} (FIXTURE_HELPERS; arguments a mapping of
    keyword arguments, or a list of positional ones) or {row: {table: ..., <column>: ...}}."""
    snap = Snapshot(conn)
    for item in staging:
        if not isinstance(item, dict) or len(item) != 1:
            raise ValueError(f"each staging item is one {{helper: arguments}} mapping, got {item!r}")
        (name, args), = item.items()
        args = _fixture_value(args)
        if name == "row":
            args = dict(args)
            snap.row(args.pop("table"), args.pop("account_id"), **args)
        elif name in FIXTURE_HELPERS:
            method = getattr(snap, name)
            method(*args) if isinstance(args, list) else method(**(args or {}))
        else:
            raise ValueError(f"unknown staging helper {name!r} (one of: row, {', '.join(FIXTURE_HELPERS)})")
    return snap


def run_fixture_case(conn, logic: str, staging: list, frameworks, search_path) -> dict:
    """Stage the rows, run the check as its DAG task does, and return {(framework, check_id, account_id,
    resource_id): (status, reason)} of the logic; everything is rolled back after."""
    from iam_audit.database import check_parameters, render_check, split_statements

    try:
        stage_fixture(conn, staging)
        params = check_parameters(SNAPSHOT, "fixture", list(frameworks))
        with conn.cursor() as cur:
            for statement in split_statements(render_check(logic, search_path)):
                cur.execute(statement, params)
        return verdicts(conn, logic)
    finally:
        conn.rollback()
