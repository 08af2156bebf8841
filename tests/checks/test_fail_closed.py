"""Malformed or drifting raw data never becomes 'pass'.

1. A raw snapshot whose payloads drifted (renamed credential report column, missing
   top-level keys) is loaded by the real loader: the data sets are recorded as
   malformed, and every check that needs them gives 'error' naming the field.
2. Every check is fed NULL in each staging column it reads, one column at a time
   (columns enumerated from the check files and the SQL functions they call): a
   resource that failed never becomes 'pass' or disappears, and no new 'pass' appears.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from iam_audit.database import check_parameters, render_check, run_check, split_statements
from iam_audit.evaluate.catalogue import load_catalogue
from iam_audit.ingest import layout
from iam_audit.ingest.load import prepare_account, write_account
from iam_audit.ingest.raw_store import RawObjectMissing
from iam_audit.paths import CHECKS_DIR
from tests.conftest import PROJECT_ROOT

from .staging import AS_OF, SNAPSHOT, Snapshot, days_ago, verdicts

A = "111111111111"
PREFIX = "iam"

# ---- 1. drifted raw payloads through the real loader ------------------------------------------

HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,"
    "cert_2_active,cert_2_last_rotated"
)
ADMIN_NO_MFA = (
    f"admin,arn:aws:iam::{A}:user/admin,2025-01-01T00:00:00+00:00,true,2026-10-30T00:00:00+00:00,"
    "2025-01-01T00:00:00+00:00,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
)


class MemoryStore:
    """Raw objects by key, as S3RawStore serves them (the loader under test is real)."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}

    def url(self, key: str) -> str:
        return f"s3://raw/{key}"

    def get(self, key: str) -> bytes:
        if key not in self.objects:
            raise RawObjectMissing(self.url(key))
        return self.objects[key]


def write_snapshot(store: MemoryStore, payloads: dict) -> None:
    datasets = {}
    for dataset, payload in payloads.items():
        key = layout.dataset_key(PREFIX, SNAPSHOT, A, dataset)
        store.objects[key] = layout.encode(payload)
        datasets[dataset] = {"status": "ok", "key": key, "sha256": hashlib.sha256(store.objects[key]).hexdigest()}
    manifest = {"format": 2, "account_id": A, "account_name": "drift", "extracted_at": AS_OF.isoformat(),
                "run_id": "r1", "datasets": datasets}
    store.objects[layout.manifest_key(PREFIX, SNAPSHOT, A)] = json.dumps(manifest).encode()


def test_drifted_payloads_become_errors_naming_the_field(db):
    store = MemoryStore()
    write_snapshot(store, {
        # renamed column: before, password_enabled read as NULL and IH.5 passed the console admin
        "credential_report": {"GeneratedTime": AS_OF.isoformat(),
                              "Content": "\n".join([HEADER.replace("password_enabled", "console_password"),
                                                    ADMIN_NO_MFA])},
        # no Policies / no RoleDetailList: before, "nothing attached" and cloudshell_full_access passed
        "authorization_details": {"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": []},
        # a renamed list: before, "no virtual device" and root_hardware_mfa passed
        "virtual_mfa_devices": {"Devices": [{"SerialNumber": f"arn:aws:iam::{A}:mfa/root-account-mfa-device"}]},
        "account_summary": {"SummaryMap": {"AccountMFAEnabled": 1, "AccountAccessKeysPresent": 0}},
        "password_policy": {"PasswordPolicy": {"MinimumPasswordLength": 14}},
    })
    prepared = prepare_account(store, PREFIX, SNAPSHOT, A)
    status = {row[0]: row[1:3] for row in prepared.status_rows}
    assert status["credential_report"] == ("error", "MalformedPayload")
    assert status["authorization_details"] == ("error", "MalformedPayload")
    assert status["password_policy"][0] == "ok"  # the rest of the account still loads
    write_account(db, SNAPSHOT, prepared)
    db.commit()
    expected = {
        "hygiene_console_admin_without_mfa": "password_enabled",
        "console_users_mfa": "password_enabled",
        "cloudshell_full_access": "has no Policies",
        "support_role": "has no Policies",
        "root_hardware_mfa": "has no VirtualMFADevices",
    }
    for logic, field in expected.items():
        run_check(db, logic, SNAPSHOT)
        got = verdicts(db, logic)
        assert got and {v[0] for v in got.values()} == {"error"}, logic
        for _, reason in got.values():
            assert "malformed" in reason and field in reason, (logic, reason)
    run_check(db, "password_policy_min_length", SNAPSHOT)
    assert {v[0] for v in verdicts(db, "password_policy_min_length").values()} == {"pass"}


# ---- 2. NULL in every staging column a check reads, one at a time ------------------------------

SQL_SOURCE = PROJECT_ROOT / "src" / "iam_audit" / "sql"
FUNCTION = re.compile(r"CREATE OR REPLACE FUNCTION\s+(\w+)\s*\((.*?)\$\$(.*?)\$\$", re.S)
# tables the check macro reads for every check (readiness), not data a check judges
FRAMEWORK_TABLES = {"accounts", "extraction_status"}
LOGICS = [check.logic for check in load_catalogue().checks]


def _without_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def _functions() -> dict[str, str]:
    bodies: dict[str, str] = {}
    for path in sorted((SQL_SOURCE / "functions").glob("*.sql")):
        for name, _, body in FUNCTION.findall(_without_comments(path.read_text(encoding="utf-8"))):
            bodies[name] = body
    return bodies


def sql_read_by(logic: str) -> str:
    """The check file's SQL, the body macros it imports (not the check macro every check shares) and the
    bodies of the SQL functions it calls, transitively."""
    functions = _functions()
    source = (CHECKS_DIR / f"{logic}.sql").read_text(encoding="utf-8")
    for macro in re.findall(r"\{%\s*from\s+'(macros/\w+\.sql)'\s+import", source):
        if macro != "macros/check.sql":
            source += "\n" + (CHECKS_DIR.parent / macro).read_text(encoding="utf-8")
    text = _without_comments(source)
    seen: set[str] = set()
    while True:
        called = {name for name in functions if name not in seen and re.search(rf"\b{name}\s*\(", text)}
        if not called:
            return text
        seen |= called
        text += "\n".join(functions[name] for name in sorted(called))


def null_meaning_columns() -> set[tuple[str, str]]:
    """Columns whose NULL has a documented meaning in the migrations ("-- NULL: never used")."""
    out = set()
    table = None
    lines = [line for path in sorted((SQL_SOURCE / "migrations").glob("*.sql"))
             for line in path.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        created = re.match(r"CREATE TABLE IF NOT EXISTS iam_stage\.(\w+)", line)
        if created:
            table = created.group(1)
        column = re.match(r"\s+(\w+)\s+\w+.*--\s*NULL:", line)
        if table and column:
            out.add((table, column.group(1)))
    return out


def columns_read(db, logic: str) -> list[tuple[str, str]]:
    """(table, column) of every nullable staging column the check names."""
    text = sql_read_by(logic)
    tables = sorted(set(re.findall(r"\biam_stage\.(\w+)", text)) - FRAMEWORK_TABLES)
    out = []
    for table in tables:
        rows = db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'iam_stage' "
            "AND table_name = %s AND is_nullable = 'YES' ORDER BY ordinal_position", (table,)).fetchall()
        out += [(table, column) for (column,) in rows if re.search(rf"\b{column}\b", text)]
    return out


STAR = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}
READ = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}]}
ESCALATE = {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["iam:CreatePolicyVersion", "s3:*"], "Resource": "*"}]}
B = "222222222222"
OUTSIDE = "999999999999"


def failing_snapshot(s: Snapshot) -> None:
    """Two accounts with a failing resource for every check (and passing ones), every column read filled."""
    from .test_catalogue_consistency import rich_account

    rich_account(s, A)
    s.user(A, "carol", password=True, mfa=True, password_last_used=days_ago(2),
           keys=({"last_rotated": days_ago(3)},), access_key_1_last_used_region="us-east-1",
           access_key_1_last_used_service="s3")
    s.iam_user(A, "carol").access_key(A, "carol", f"AKIA{A}CAROL1", created=days_ago(3), last_used=days_ago(1))
    s.access_key(A, "ci", f"AKIA{A}CIOLD1", created=days_ago(400), last_used=days_ago(1))
    s.member_of(A, "bob", "admins").member_of(A, "alice", "admins")
    s.inline_policy(A, "user", "alice", "escalate", ESCALATE)
    s.inline_policy(A, "role", "ops", "break-glass", STAR)
    s.managed_policy(A, "custom-escalate", ESCALATE, attachments=1)
    s.trusting_role(A, "builder", {"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                  "Action": "sts:AssumeRole"}]},
                    created=days_ago(20), last_used=days_ago(1))
    s.attach(A, "role", "builder", Snapshot.arn(A, "policy", "custom-escalate"))
    # permissions boundaries that let the escalation through (a NULL boundary must not hide it)
    for table, name in (("roles", "builder"), ("users", "ci")):
        s.conn.execute(f"UPDATE iam_stage.{table} SET permissions_boundary_arn = %s WHERE arn = %s",  # noqa: S608
                       (Snapshot.arn(A, "policy", "custom-escalate"), Snapshot.arn(A, table[:-1], name)))
    s.trusting_role(A, "open", {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}]},
                    created=days_ago(500), last_used=days_ago(200))
    s.trusting_role(A, "vendor", {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"AWS": f"arn:aws:iam::{OUTSIDE}:root"}}]},
                    created=days_ago(10), last_used=days_ago(1), path="/vendor/")
    s.trusting_role(A, "vendor-secret", {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                                        "Action": "sts:AssumeRole",
                                                        "Condition": {"StringEquals": {"sts:ExternalId": "v7"}}}]},
                    created=days_ago(30), last_used=days_ago(1))
    s.organization_account(A).organization_account(B)
    for region, count in (("eu-west-1", 2), ("us-east-1", 1)):
        s.row("access_analyzer_regions", A, region_name=region, status="ok", analyzer_count=count)
    s.row("access_analyzer_regions", A, region_name="af-south-1", status="error",
          error_code="AccessDeniedException", error_message="denied by a region-deny SCP")
    # a second account that fails where the first passes
    s.account(B)
    s.user(B, "<root_account>", is_root=True, password_last_used=days_ago(400))
    s.user(B, "dan", password=True, mfa=False, password_last_used=days_ago(60), created=days_ago(90))
    s.password_policy(B, minimum_password_length=10, require_symbols=False, require_numbers=False,
                      require_uppercase_characters=False, require_lowercase_characters=False,
                      expire_passwords=False, max_password_age=180, password_reuse_prevention=5)
    s.account_summary(B, mfa=0, root_keys=0, password_present=1)
    s.region(B, "us-east-1").analyzer(B, "us-east-1", analyzer_type="ACCOUNT_UNUSED_ACCESS")
    s.row("access_analyzer_regions", B, region_name="us-east-1", status="ok", analyzer_count=1)
    s.server_certificate(B, "soon", days_ago(-5))
    s.commit()


def evaluate(db, logic: str) -> dict:
    """Run the check in the open transaction and read its verdicts (the caller rolls back)."""
    params = check_parameters(SNAPSHOT, "malformed", list(load_catalogue().frameworks))
    with db.cursor() as cur:
        for statement in split_statements(render_check(logic)):
            cur.execute(statement, params)
    return {key: value[0] for key, value in verdicts(db, logic).items()}


def test_column_enumeration_reads_function_bodies_and_skips_comments(db):
    # hygiene_service_wildcards reads documents through iam_audit_customer_policies()
    assert ("inline_policies", "document") in columns_read(db, "hygiene_service_wildcards")
    assert ("managed_policies", "document") in columns_read(db, "hygiene_service_wildcards")
    assert ("credential_report", "password_enabled") in columns_read(db, "hygiene_console_admin_without_mfa")
    assert ("account_summary", "account_password_present") in columns_read(db, "root_mfa")
    assert ("credential_report", "password_last_used") in null_meaning_columns()


@pytest.mark.parametrize("logic", LOGICS)
def test_null_in_any_column_read_never_turns_a_failure_into_a_pass(db, logic):
    failing_snapshot(Snapshot(db))
    baseline = evaluate(db, logic)
    db.rollback()
    assert "fail" in baseline.values(), f"{logic}: the fixture must give at least one 'fail' to test against"
    meaningful = null_meaning_columns()
    problems = []
    assert re.search(r"\biam_stage\.\w+", sql_read_by(logic)), f"{logic}: reads no staging table"
    columns = columns_read(db, logic)  # may be empty: every column it reads is NOT NULL
    for table, column in columns:
        filled = db.execute(
            f"SELECT count(*) FROM iam_stage.{table} WHERE {column} IS NOT NULL").fetchone()[0]  # noqa: S608
        assert filled, f"{logic}: the fixture leaves {table}.{column} NULL everywhere; give it values"
        if (table, column) in meaningful:
            continue  # NULL is a documented value here ("never used"), not unknown
        db.execute(f"UPDATE iam_stage.{table} SET {column} = NULL")  # noqa: S608
        mutated = evaluate(db, logic)
        db.rollback()
        for key, status in baseline.items():
            if status != "pass" and mutated.get(key) in (None, "pass"):
                problems.append(f"{table}.{column} = NULL turns {status} into {mutated.get(key) or 'no verdict'}"
                                f" for {key}")
        for key, status in mutated.items():
            if key not in baseline and status == "pass":
                problems.append(f"{table}.{column} = NULL adds a pass for {key}")
    assert problems == [], f"{logic}:\n" + "\n".join(problems)
