"""Build staging fixtures for check tests: real rows in a real PostgreSQL.

Every account gets all data sets marked collected unless told otherwise, and
as_of (the extraction time that checks compute ages from) is fixed, so fixtures
can state ages in days exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

SNAPSHOT = date(2026, 11, 1)
AS_OF = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)

ALL_DATASETS = (
    "credential_report", "authorization_details", "password_policy", "account_summary",
    "virtual_mfa_devices", "access_keys", "server_certificates", "regions", "access_analyzers",
    "alternate_contacts", "identity_providers",
)


def days_ago(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


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
             is_root: bool = False) -> Snapshot:
        """A credential report row. keys: up to two dicts(active, last_rotated, last_used)."""
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
        return self.row("credential_report", account_id, **values)

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


def statuses(conn, logic: str, framework: str) -> dict:
    """{resource_id: status} for one logic and framework."""
    return {key[3]: value[0] for key, value in verdicts(conn, logic, framework).items()}
