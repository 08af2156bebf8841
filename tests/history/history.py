"""A multi-day history with churn, evaluated by the shipped checks and by the earlier design.

The earlier design is kept as a reference: tests/history/legacy_check.sql is the
check macro as it was before the history storage (one row per snapshot_date x
framework x control x resource), writing into a plain table legacy_results.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import jinja2

from iam_audit.database import check_parameters, run_check, split_statements
from iam_audit.evaluate.catalogue import load_catalogue
from iam_audit.ingest.load import STAGING_TABLES
from iam_audit.paths import SQL_DIR

HERE = Path(__file__).resolve().parent
SYNTHETIC = HERE.parents[1] / "bench" / "synthetic.sql"
ACCOUNTS = [f"{100000000000 + a:012d}" for a in (1, 2, 3)]
COLUMNS = ("snapshot_date, framework, check_id, title, severity, account_id, resource_id, resource_type, "
           "status, reason, control_logic")

_legacy = jinja2.Environment(
    loader=jinja2.ChoiceLoader([
        jinja2.DictLoader({"macros/check.sql": (HERE / "legacy_check.sql").read_text()}),
        jinja2.FileSystemLoader(str(SQL_DIR)),
    ]),
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
)


def create_legacy_table(conn) -> None:
    conn.execute("""
        CREATE TABLE IF NOT EXISTS legacy_results (
            snapshot_date date NOT NULL, framework text NOT NULL, check_id text NOT NULL, title text NOT NULL,
            severity text NOT NULL, account_id text NOT NULL, resource_id text NOT NULL, resource_type text,
            status text NOT NULL, reason text NOT NULL, run_id text, evaluated_at timestamptz NOT NULL DEFAULT now(),
            control_logic text,
            UNIQUE (snapshot_date, framework, check_id, account_id, resource_id))""")
    conn.commit()


def logics() -> list[str]:
    return [c.logic for c in load_catalogue().checks]


def run_legacy(conn, snapshot_date: date, run_id: str, frameworks=None) -> None:
    frameworks = list(frameworks or load_catalogue().frameworks)
    params = check_parameters(snapshot_date, run_id, frameworks)
    for logic in logics():
        sql = _legacy.get_template(f"checks/{logic}.sql").render()
        with conn.cursor() as cur:
            for statement in split_statements(sql):
                cur.execute(statement, params)
    conn.commit()


def run_new(conn, snapshot_date: date, run_id: str, frameworks=None) -> None:
    for logic in logics():
        run_check(conn, logic, snapshot_date, run_id, frameworks)


def build_base(conn, snapshot_date: date, users: int = 12) -> None:
    sql = (SYNTHETIC.read_text().replace("{accounts}", str(len(ACCOUNTS))).replace("{users}", str(users))
           .replace("{date}", snapshot_date.isoformat()))
    with conn.transaction():
        conn.execute(sql)


def copy_day(conn, source: date, target: date) -> None:
    """Stage `target` as a copy of `source`, replacing what `target` had."""
    with conn.transaction():
        for table in STAGING_TABLES:
            conn.execute(f"DELETE FROM iam_stage.{table} WHERE snapshot_date = %s", (target,))  # noqa: S608
            conn.execute(f"CREATE TEMP TABLE _copy ON COMMIT DROP AS SELECT * FROM iam_stage.{table} "  # noqa: S608
                         "WHERE snapshot_date = %s", (source,))
            conn.execute("UPDATE _copy SET snapshot_date = %s", (target,))
            conn.execute(f"INSERT INTO iam_stage.{table} SELECT * FROM _copy")  # noqa: S608
            conn.execute("DROP TABLE _copy")


def churn(conn, day: date, step: int) -> None:
    """Change a staged day: statuses flip, resources appear and disappear, reasons change,
    an account's data goes missing (its verdicts become 'error')."""
    a1, a2, a3 = ACCOUNTS
    sql = {
        1: [  # MFA flips for two users, a key disappears, a new key appears, a2 misses its credential report
            ("UPDATE iam_stage.credential_report SET mfa_active = NOT mfa_active "
             "WHERE snapshot_date = %(d)s AND account_id = %(a1)s AND user_name IN ('user-3', 'user-7')"),
            "DELETE FROM iam_stage.access_keys WHERE snapshot_date = %(d)s AND account_id = %(a1)s "
            "AND user_name = 'user-4'",
            ("INSERT INTO iam_stage.access_keys SELECT snapshot_date, account_id, user_name, user_arn, "
             "access_key_id || 'N', status, create_date - interval '400 days', last_used_date, last_used_region, "
             "last_used_service FROM iam_stage.access_keys WHERE snapshot_date = %(d)s AND account_id = %(a3)s "
             "AND user_name = 'user-6'"),
            ("UPDATE iam_stage.extraction_status SET status = 'error', error_code = 'AccessDenied', "
             "error_message = 'not authorized' WHERE snapshot_date = %(d)s AND account_id = %(a2)s "
             "AND dataset = 'credential_report'"),
        ],
        2: [  # a2 is back; a reason changes without a status change; one MFA flips back
            ("UPDATE iam_stage.extraction_status SET status = 'ok', error_code = NULL, error_message = NULL "
             "WHERE snapshot_date = %(d)s AND account_id = %(a2)s"),
            ("UPDATE iam_stage.password_policy SET minimum_password_length = minimum_password_length + 1, "
             "password_reuse_prevention = password_reuse_prevention + 1 WHERE snapshot_date = %(d)s"),
            ("UPDATE iam_stage.credential_report SET mfa_active = NOT mfa_active "
             "WHERE snapshot_date = %(d)s AND account_id = %(a1)s AND user_name = 'user-3'"),
        ],
        3: [  # the root user of a3 loses its report row (the body's own account-level 'error'), a1's key is back
            ("DELETE FROM iam_stage.credential_report WHERE snapshot_date = %(d)s AND account_id = %(a3)s "
             "AND is_root"),
            ("INSERT INTO iam_stage.access_keys SELECT %(d)s, account_id, 'user-4', "
             "replace(user_arn, user_name, 'user-4'), replace(access_key_id, user_name, 'user-4'), status, "
             "create_date, last_used_date, last_used_region, last_used_service FROM iam_stage.access_keys "
             "WHERE snapshot_date = %(d)s AND account_id = %(a1)s AND user_name = 'user-2' "
             "ON CONFLICT DO NOTHING"),
        ],
        4: [  # a3 is not audited at all this day; a2 misses everything
            *[f"DELETE FROM iam_stage.{t} WHERE snapshot_date = %(d)s AND account_id = %(a3)s"  # noqa: S608
              for t in reversed(STAGING_TABLES)],
            ("UPDATE iam_stage.extraction_status SET status = 'error', error_code = 'Throttling', "
             "error_message = 'rate exceeded' WHERE snapshot_date = %(d)s AND account_id = %(a2)s"),
        ],
        5: [  # replay variant of a middle day: other flips and a missing access key set
            ("UPDATE iam_stage.credential_report SET mfa_active = NOT mfa_active, password_enabled = true "
             "WHERE snapshot_date = %(d)s AND account_id = %(a2)s AND user_name IN ('user-1', 'user-2', 'user-9')"),
            ("UPDATE iam_stage.extraction_status SET status = 'error', error_code = 'AccessDenied', "
             "error_message = 'denied' WHERE snapshot_date = %(d)s AND account_id = %(a1)s "
             "AND dataset = 'access_keys'"),
        ],
    }[step]
    with conn.transaction():
        for statement in sql:
            conn.execute(statement, {"d": day, "a1": a1, "a2": a2, "a3": a3})


def rows(conn, relation: str, snapshot_date: date | None = None) -> list[tuple]:
    where = "WHERE snapshot_date = %s" if snapshot_date else ""
    return conn.execute(f"SELECT {COLUMNS}, run_id FROM {relation} {where} ORDER BY {COLUMNS}",  # noqa: S608
                        (snapshot_date,) if snapshot_date else ()).fetchall()


def storage(conn) -> dict[str, list[tuple]]:
    """The history tables, comparable between databases (variants by content, not id)."""
    tables = {
        "verdicts": conn.execute(
            "SELECT v.control_logic, v.params, i.account_id, i.resource_id, i.valid_from, i.valid_to::text, "
            "i.resource_type, i.status, i.reason, i.failing_since FROM aws_policy_verdicts i "
            "JOIN aws_policy_variants v "
            "USING (variant_id) ORDER BY 1, 2::text, 3, 4, 5").fetchall(),
        "evaluations": conn.execute(
            "SELECT e.snapshot_date, v.control_logic, v.params, e.account_id, e.error_reason, e.evaluated, "
            "e.pass_count, e.fail_count, e.error_count FROM aws_policy_evaluations e "
            "JOIN aws_policy_variants v USING (variant_id) ORDER BY 1, 2, 3::text, 4").fetchall(),
        "scopes": conn.execute(
            "SELECT s.snapshot_date, s.framework, s.check_id, v.control_logic, v.params, s.title, s.severity "
            "FROM aws_policy_scopes s JOIN aws_policy_variants v USING (variant_id) ORDER BY 1, 2, 3").fetchall(),
    }
    return {name: sorted(table, key=str) for name, table in tables.items()}


VIEWS = {
    # view -> columns compared (every column of the view; run_id and evaluated_at only where they are stored per date)
    "evaluated_snapshots": "*",
    "scores": "*",
    "latest": ("framework, check_id, account_id, resource_id, snapshot_date, title, severity, resource_type, "
               "status, effective_status, reason, exception_id, exception_reason, exception_expires_on, "
               "is_current, control_logic"),
    "changes": "*",
    "open_findings": "*",
}


def create_legacy_views(conn) -> None:
    conn.execute((HERE / "legacy_views.sql").read_text())
    conn.commit()


def view_rows(conn, view: str, prefix: str) -> list[tuple]:
    columns = VIEWS[view]
    return sorted(conn.execute(f"SELECT {columns} FROM {prefix}{view}").fetchall(), key=str)  # noqa: S608
