"""Schema, catalogue and check execution against the compliance database.

Functions take a DB-API connection (psycopg 3, as PostgresHook.get_conn() returns)
so that the DAG, the tests and the demo share one code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import jinja2

from iam_audit.catalogue import Catalogue, catalogue_rows, load_catalogue
from iam_audit.paths import SCHEMA_DIR, SQL_DIR, VIEWS_DIR

# Serialises concurrent schema changes from parallel DAG runs.
_SCHEMA_LOCK_KEY = 0x1A4A_5C15


def schema_files() -> list:
    files = sorted(SCHEMA_DIR.glob("*.sql"))
    if VIEWS_DIR.exists():
        files += sorted(VIEWS_DIR.glob("*.sql"))
    return files


def apply_schema(conn, catalogue: Catalogue | None = None) -> list[str]:
    """Apply sql/schema/*.sql then sql/views/*.sql in order and sync the catalogue, in one transaction."""
    catalogue = catalogue or load_catalogue()
    applied = []
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        for path in schema_files():
            cur.execute(path.read_text(encoding="utf-8"))
            applied.append(path.name)
        rows = catalogue_rows(catalogue)
        cur.execute("CREATE TEMP TABLE _catalogue (LIKE aws_policy_controls) ON COMMIT DROP")
        with cur.copy(
            "COPY _catalogue (framework, check_id, logic, title, severity, level, assessment, params) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(
            """
            INSERT INTO aws_policy_controls AS c
            SELECT * FROM _catalogue
            ON CONFLICT (framework, check_id) DO UPDATE
               SET logic = EXCLUDED.logic, title = EXCLUDED.title, severity = EXCLUDED.severity,
                   level = EXCLUDED.level, assessment = EXCLUDED.assessment, params = EXCLUDED.params
            """
        )
        cur.execute(
            "DELETE FROM aws_policy_controls c WHERE NOT EXISTS "
            "(SELECT 1 FROM _catalogue n WHERE n.framework = c.framework AND n.check_id = c.check_id)"
        )
    conn.commit()
    return applied


_jinja = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(SQL_DIR)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def render_check(logic: str) -> str:
    """The SQL of sql/checks/<logic>.sql as Airflow renders it (template_searchpath = sql/)."""
    return _jinja.get_template(f"checks/{logic}.sql").render()


def split_statements(sql: str) -> list[str]:
    import sqlparse

    return [s.strip().rstrip(";") for s in sqlparse.split(sql) if s.strip().rstrip(";").strip()]


def check_parameters(snapshot_date: date | str, run_id: str, frameworks: Sequence[str]) -> dict:
    return {"snapshot_date": str(snapshot_date), "run_id": run_id, "frameworks": list(frameworks)}


def run_check(conn, logic: str, snapshot_date: date | str, run_id: str = "manual",
              frameworks: Sequence[str] | None = None) -> None:
    """Run one check outside Airflow (tests, benchmarks), exactly as its DAG task does."""
    frameworks = list(frameworks or load_catalogue().frameworks)
    params = check_parameters(snapshot_date, run_id, frameworks)
    with conn.cursor() as cur:
        for statement in split_statements(render_check(logic)):
            cur.execute(statement, params)
    conn.commit()
