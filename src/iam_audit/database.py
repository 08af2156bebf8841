"""Schema, catalogue and check execution against the compliance database.

Functions take a DB-API connection (psycopg 3, as PostgresHook.get_conn() returns)
so that the DAG, the tests and the demo share one code path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

import jinja2
import psycopg
from tenacity import RetryError, retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from iam_audit.evaluate.catalogue import Catalogue, catalogue_rows, load_catalogue
from iam_audit.paths import FUNCTIONS_DIR, MIGRATIONS_DIR, VIEWS_DIR

log = logging.getLogger(__name__)

# Serialises concurrent schema changes from parallel DAG runs.
_SCHEMA_LOCK_KEY = 0x1A4A_5C15


class SchemaLocked(RuntimeError):
    """prepare_database could not take the locks its DDL needs within its lock_timeout."""


class SnapshotDateLocked(RuntimeError):
    """Another run is writing the same snapshot date."""


# ---- session settings ---------------------------------------------------------------

def timeouts() -> dict[str, str]:
    """The pipeline's database timeouts (PostgreSQL interval strings), from the environment.

    IAM_AUDIT_DB_LOCK_TIMEOUT       longest wait for a table lock (default 1min)
    IAM_AUDIT_DB_STATEMENT_TIMEOUT  longest statement (default 30min)
    IAM_AUDIT_SCHEMA_LOCK_TIMEOUT   longest wait of prepare_database's DDL for one lock (default 5s):
                                    readers queue behind a waiting DDL, so this bounds their wait
    IAM_AUDIT_DATE_LOCK_TIMEOUT     longest wait for another run writing the same date (default 10min)
    """
    return {
        "lock_timeout": os.environ.get("IAM_AUDIT_DB_LOCK_TIMEOUT", "1min"),
        "statement_timeout": os.environ.get("IAM_AUDIT_DB_STATEMENT_TIMEOUT", "30min"),
        "schema_lock_timeout": os.environ.get("IAM_AUDIT_SCHEMA_LOCK_TIMEOUT", "5s"),
        "date_lock_timeout": os.environ.get("IAM_AUDIT_DATE_LOCK_TIMEOUT", "10min"),
    }


def session_options() -> str:
    """libpq `options` for every pipeline session (PostgresHook(options=...), hook_params of the checks)."""
    t = timeouts()
    for name, value in t.items():
        if not value.replace(" ", "").isalnum():
            raise ValueError(f"{name}={value!r} is not a PostgreSQL interval such as 30s, 5min or 1h")
    return (f"-c lock_timeout={t['lock_timeout']} -c statement_timeout={t['statement_timeout']} "
            f"-c iam_audit.date_lock_timeout={t['date_lock_timeout']} -c application_name=aws_iam_cis")


def pipeline_hook(postgres_conn_id: str):
    """The PostgresHook of the pipeline's tasks: every session carries the timeouts above."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=postgres_conn_id, options=session_options())


# ---- schema -------------------------------------------------------------------------
#
# Two kinds of SQL. Tables change through versioned migrations (sql/migrations/NNNN_name.sql),
# each applied once, in its own transaction, and recorded in iam_audit_schema_migrations with
# its checksum. Functions and views (sql/functions, sql/views) are definitions, written to be
# re-run: they are applied as a whole, with the catalogue, whenever their fingerprint changes.
# A migration named NNNN_name.post.sql runs after the functions and views (it may call them);
# the others run before them.

MIGRATIONS_TABLE = "iam_audit_schema_migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+(\.post)?\.sql$")


class MigrationChanged(RuntimeError):
    """An applied migration's file differs from what was applied, or the database knows one the package lacks."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    post: bool

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def migrations() -> list[Migration]:
    """sql/migrations/*.sql in version order; a misnamed file or a repeated version is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"{path}: a migration is named NNNN_lowercase_name.sql or NNNN_name.post.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"{path}: version {version} is also {found[version].name}")
        found[version] = Migration(version, path.name, path, bool(match.group(2)))
    return [found[v] for v in sorted(found)]


def definition_files() -> list[Path]:
    """The re-runnable definitions in the order they are applied: sql/functions, then sql/views."""
    return sorted(FUNCTIONS_DIR.glob("*.sql")) + sorted(VIEWS_DIR.glob("*.sql"))


def schema_files() -> list[Path]:
    return [m.path for m in migrations()] + definition_files()


def schema_fingerprint(catalogue: Catalogue | None = None) -> str:
    """SHA-256 of the migrations, sql/functions, sql/views (names and text, in order) and the catalogue
    rows: a new migration also re-applies the definitions, which may read what it changed."""
    digest = hashlib.sha256()
    for path in schema_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    rows = catalogue_rows(catalogue or load_catalogue())
    digest.update(json.dumps(rows, default=str, sort_keys=True).encode())
    return digest.hexdigest()


def apply_schema(conn, catalogue: Catalogue | None = None, *, force: bool = False,
                 lock_timeout: str | None = None, attempts: int = 3) -> list[str]:
    """Bring the database to this package's schema: pending migrations, then the functions, views
    and catalogue when they changed since the last apply (iam_audit_schema_state holds their
    fingerprint; `force` re-applies them), then pending .post migrations.

    Returns the files applied ([] when nothing was pending or changed: no DDL at all). Each DDL
    waits at most `lock_timeout` for its lock (so readers queue behind it no longer than that),
    then its transaction is rolled back and retried; after `attempts`, SchemaLocked names the
    sessions in the way. A migration already applied whose file changed is MigrationChanged.
    """
    catalogue = catalogue or load_catalogue()
    fingerprint = schema_fingerprint(catalogue)
    wait = lock_timeout or timeouts()["schema_lock_timeout"]
    known = migrations()
    applied: list[str] = []
    definitions_done = []

    @retry(retry=retry_if_exception_type(psycopg.errors.LockNotAvailable), stop=stop_after_attempt(attempts),
           wait=wait_exponential(multiplier=1, max=10), reraise=False)
    def attempt() -> None:
        try:
            # each step commits on its own, so a retry resumes after the last committed one
            applied.extend(_apply_migrations(conn, [m for m in known if not m.post], known, wait))
            if not definitions_done:
                applied.extend(_apply_definitions(conn, catalogue, fingerprint, force, wait))
                definitions_done.append(True)
            applied.extend(_apply_migrations(conn, [m for m in known if m.post], known, wait))
        except psycopg.errors.LockNotAvailable:
            conn.rollback()
            log.warning("prepare_database: a lock was not free within %s; rolled back, will retry", wait)
            raise

    try:
        attempt()
    except RetryError:
        raise SchemaLocked(
            f"the schema could not be updated: its DDL waited {wait} for a lock, {attempts} times "
            f"(readers are never kept waiting longer than that). Sessions holding locks on the "
            f"compliance tables and views: {_lock_holders(conn)}. End them (pg_terminate_backend(pid)) "
            "or let them finish, then re-run; an unchanged schema needs no lock at all."
        ) from None
    return applied


def _take_schema_lock(cur, wait: str) -> None:
    """Serialise schema changes for the rest of the transaction."""
    cur.execute("SELECT set_config('lock_timeout', %s, true)", (wait,))
    cur.execute("SELECT to_regclass('iam_audit_locks') IS NOT NULL")
    if not cur.fetchone()[0]:
        # the very first apply, before the lock table exists; whoever waited here while another
        # session created it takes its row too (below)
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        cur.execute("SELECT to_regclass('iam_audit_locks') IS NOT NULL")
        if not cur.fetchone()[0]:
            return
    # a row lock only the pipeline's role can take (see sql/migrations/0001_baseline.sql)
    cur.execute("SELECT 1 FROM iam_audit_locks WHERE lock_name = 'schema' FOR UPDATE")


def _recorded(conn) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of the migrations the database records ({} before the first)."""
    with conn.transaction(), conn.cursor() as cur:   # a read: leaves a caller's transaction as it was
        cur.execute("SELECT to_regclass(%s) IS NULL", (MIGRATIONS_TABLE,))
        if cur.fetchone()[0]:
            return {}
        cur.execute(f"SELECT version, name, checksum FROM {MIGRATIONS_TABLE}")  # noqa: S608
        return {version: (name, checksum) for version, name, checksum in cur.fetchall()}


def _verify(recorded: dict[int, tuple[str, str]], known: list[Migration]) -> None:
    by_version = {m.version: m for m in known}
    for version, (name, checksum) in sorted(recorded.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationChanged(
                f"the database records migration {name}, which this package does not have: it was "
                "upgraded by a newer release; install that release (or a later one)")
        if migration.checksum != checksum:
            raise MigrationChanged(
                f"{migration.path} was changed after it was applied to this database (recorded as {name}, "
                f"sha256 {checksum[:12]}, now {migration.checksum[:12]}): an applied migration is never "
                "edited; restore it and put the change in a new migration")


def _apply_migrations(conn, pending_kind: list[Migration], known: list[Migration], wait: str) -> list[str]:
    """Apply those of `pending_kind` the database has not recorded, each in its own transaction."""
    recorded = _recorded(conn)
    _verify(recorded, known)
    applied = []
    for migration in pending_kind:
        if migration.version in recorded:
            continue
        with conn.transaction(), conn.cursor() as cur:
            _take_schema_lock(cur, wait)
            cur.execute(f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{{64}}$'),
                applied_at timestamptz NOT NULL DEFAULT now())""")
            # another session may have applied it while this one waited for the lock
            cur.execute(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE version = %s",  # noqa: S608
                        (migration.version,))
            if cur.fetchone():
                continue
            cur.execute(migration.path.read_text(encoding="utf-8"))
            cur.execute(f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum) VALUES (%s, %s, %s)",  # noqa: S608
                        (migration.version, migration.name, migration.checksum))
        conn.commit()
        log.info("applied migration %s", migration.name)
        applied.append(migration.name)
    return applied


def _apply_definitions(conn, catalogue: Catalogue, fingerprint: str, force: bool, wait: str) -> list[str]:
    applied = []
    with conn.transaction(), conn.cursor() as cur:
        _take_schema_lock(cur, wait)
        if not force:
            cur.execute("SELECT fingerprint FROM iam_audit_schema_state WHERE id")
            row = cur.fetchone()
            if row and row[0] == fingerprint:
                log.info("schema and catalogue unchanged (%s): no DDL", fingerprint[:12])
                return []
        for path in definition_files():
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
        cur.execute(
            "INSERT INTO iam_audit_schema_state (id, fingerprint, applied_at) VALUES (true, %s, now()) "
            "ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, applied_at = EXCLUDED.applied_at",
            (fingerprint,),
        )
    conn.commit()
    log.info("applied %d function and view files and the catalogue (%s)", len(applied), fingerprint[:12])
    return applied


_HOLDERS_SQL = """
    SELECT DISTINCT ON (a.pid) 'pid ' || a.pid || ' (' || coalesce(a.usename, '?') || ', '
           || coalesce(nullif(a.application_name, ''), 'no application_name') || ', '
           || coalesce(a.state, '?')
           || coalesce(' for ' || date_trunc('second', now() - a.state_change)::text, '') || '): '
           || left(regexp_replace(coalesce(a.query, ''), '[[:space:]]+', ' ', 'g'), 120)
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE {where} AND l.granted AND a.pid <> pg_backend_pid()
    ORDER BY a.pid
    LIMIT 10
"""


def _lock_holders(conn, where: str = "l.locktype = 'relation' AND l.database = "
                  "(SELECT oid FROM pg_database WHERE datname = current_database()) AND l.relation IN "
                  "(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                  "WHERE n.nspname IN ('public', 'iam_stage'))", params=()) -> str:
    try:
        rows = conn.execute(_HOLDERS_SQL.format(where=where), params).fetchall()  # noqa: S608
        conn.rollback()
    except psycopg.Error as exc:
        return f"(could not list them: {exc})"
    return "; ".join(r[0] for r in rows) or "none found any more"


# ---- concurrent runs of one date ----------------------------------------------------------

@contextmanager
def snapshot_date_lock(connect: Callable, snapshot_date, wait: str | None = None) -> Iterator[None]:
    """Hold the date's lock (the load of a run) for the duration of the block.

    The lock is the row 'date <d>' of iam_audit_locks, locked FOR UPDATE by a transaction of its own
    connection that stays open for the block; the checks lock it FOR SHARE (iam_audit_lock_for_check),
    so a load never overlaps a check or another load of the same date. Only roles that may update
    iam_audit_locks can take it (not compliance_reader). Waits at most `wait`, then SnapshotDateLocked
    names the sessions that may hold it.
    """
    wait = wait or timeouts()["date_lock_timeout"]
    conn = connect()
    try:
        # this session idles in its transaction on purpose while the block runs
        conn.execute("SELECT set_config('idle_in_transaction_session_timeout', '0', false)")
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (wait,))
        try:
            conn.execute("SELECT iam_audit_take_lock(iam_audit_lock_name(%s::date))", (str(snapshot_date),))
        except psycopg.errors.LockNotAvailable:
            conn.rollback()
            holders = conn.execute("SELECT iam_audit_lock_holders()").fetchone()[0]
            conn.rollback()
            raise SnapshotDateLocked(
                f"another run is writing snapshot {snapshot_date} and did not finish within {wait}: sessions that "
                f"may hold it: {holders}. Runs of one date never write at the same time; re-run this one once it "
                "is done."
            ) from None
        try:
            yield
        finally:
            conn.commit()
    finally:
        conn.close()


@cache
def _jinja(search_path: tuple[str, ...]) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(search_path)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_check(logic: str, search_path: Sequence[str] | None = None) -> str:
    """The SQL of checks/<logic>.sql as Airflow renders it (template_searchpath: sql/, then the custom
    controls' folder when one is set)."""
    if search_path is None:
        from iam_audit.custom import current

        search_path = current().search_path()
    return _jinja(tuple(search_path)).get_template(f"checks/{logic}.sql").render()


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
