"""Versioned migrations against a real PostgreSQL: each applied once and recorded, a fresh database
and a database of the layout released before them both reach the same schema, an edited migration is
refused by name, and concurrent applies never apply one twice."""

from __future__ import annotations

import gzip
import shutil
import threading
from pathlib import Path

import psycopg
import pytest

from iam_audit import database
from iam_audit.database import MigrationChanged, apply_schema, migrations

RELEASED = Path(__file__).parent / "data" / "released_layout.sql.gz"


def schema_of(conn) -> dict:
    """Tables with their columns, indexes, views and functions of the public and iam_stage schemas."""
    tables = conn.execute("""
        SELECT table_schema || '.' || table_name, array_agg(column_name || ' ' || data_type || ' '
               || is_nullable || ' ' || coalesce(column_default, '') ORDER BY column_name)
        FROM information_schema.columns WHERE table_schema IN ('public', 'iam_stage')
        GROUP BY 1 ORDER BY 1""").fetchall()
    indexes = conn.execute("""SELECT schemaname || '.' || indexname, indexdef FROM pg_indexes
                              WHERE schemaname IN ('public', 'iam_stage') ORDER BY 1""").fetchall()
    constraints = conn.execute("""
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace IN ('public'::regnamespace, 'iam_stage'::regnamespace) ORDER BY 1, 2""").fetchall()
    routines = conn.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1""").fetchall()
    triggers = conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1").fetchall()
    conn.rollback()
    return {"tables": tables, "indexes": indexes, "constraints": constraints, "routines": routines,
            "triggers": triggers}


def recorded(conn) -> list[tuple[int, str]]:
    rows = conn.execute("SELECT version, name FROM iam_audit_schema_migrations ORDER BY version").fetchall()
    conn.rollback()
    return rows


def restore_released(postgres, database_name: str) -> None:
    """The released layout's dump, restored into the empty database (its own session: the dump
    empties search_path for the session that runs it)."""
    sql = gzip.decompress(RELEASED.read_bytes()).decode()
    with postgres.connect(database_name) as conn:
        conn.execute(sql)
        conn.commit()


def test_a_fresh_database_records_every_migration_once(db):
    assert recorded(db) == [(m.version, m.name) for m in migrations()]
    checksums = db.execute("SELECT name, checksum FROM iam_audit_schema_migrations").fetchall()
    assert dict(checksums) == {m.name: m.checksum for m in migrations()}
    before = db.execute("SELECT version, applied_at FROM iam_audit_schema_migrations ORDER BY 1").fetchall()
    db.rollback()
    # re-running applies nothing: no migration twice, no definitions while unchanged
    assert apply_schema(db) == []
    # a forced apply re-runs the functions and views only, never a migration
    forced = apply_schema(db, force=True)
    assert forced and not {m.name for m in migrations()} & set(forced)
    assert db.execute("SELECT version, applied_at FROM iam_audit_schema_migrations ORDER BY 1").fetchall() == before


def test_the_released_layout_upgrades_in_one_step_with_its_data(postgres, database, tmp_path):
    restore_released(postgres, database)
    conn = postgres.connect(database)
    try:
        assert conn.execute("SELECT to_regclass('iam_audit_schema_migrations')").fetchone()[0] is None
        data = {table: conn.execute(f"SELECT count(*), sum(hashtext(t::text)) FROM {table} t").fetchone()  # noqa: S608
                for table in ("aws_policy_results", "aws_policy_verdicts", "aws_policy_evaluations",
                              "aws_policy_exceptions", "iam_stage.users", "iam_stage.credential_report")}
        latest = conn.execute("SELECT * FROM aws_policy_latest ORDER BY 1, 2, 3, 4, 5, 6").fetchall()
        assert data["aws_policy_results"][0] > 0 and latest
        conn.rollback()

        applied = apply_schema(conn)
        assert [m.name for m in migrations()] == [name for name in applied if name in {m.name for m in migrations()}]
        assert recorded(conn) == [(m.version, m.name) for m in migrations()]
        for table, before in data.items():
            assert conn.execute(f"SELECT count(*), sum(hashtext(t::text)) FROM {table} t").fetchone() == before, table  # noqa: S608
        assert conn.execute("SELECT * FROM aws_policy_latest ORDER BY 1, 2, 3, 4, 5, 6").fetchall() == latest
        # the lock rows the dump left out are there again
        assert conn.execute("SELECT count(*) FROM iam_audit_locks").fetchone()[0] == 1 + 256 + 1024
        conn.rollback()
        assert apply_schema(conn) == []

        # the same schema as a fresh database
        fresh = f"{database}_fresh"
        postgres.create_database(fresh)
        try:
            with postgres.connect(fresh) as other:
                apply_schema(other)
                assert schema_of(conn) == schema_of(other)
        finally:
            with psycopg.connect(postgres.conninfo(), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
    finally:
        conn.close()


def test_the_compliance_reader_keeps_its_grants_after_the_upgrade(postgres, database):
    import uuid

    restore_released(postgres, database)
    with postgres.connect(database) as conn:
        apply_schema(conn)
        login = f"bi_{uuid.uuid4().hex[:10]}"
        conn.execute(f'CREATE ROLE "{login}" LOGIN IN ROLE compliance_reader')
        conn.commit()
        try:
            with psycopg.connect(f"host={postgres.socket_dir} port={postgres.port} user={login} "
                                 f"dbname={database}") as reader:
                assert reader.execute("SELECT count(*) FROM aws_policy_results").fetchone()[0] > 0
                assert reader.execute("SELECT count(*) FROM aws_policy_latest").fetchone() is not None
                for table in ("iam_stage.users", "iam_audit_schema_migrations"):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        reader.execute(f"SELECT 1 FROM {table}")  # noqa: S608
                    reader.rollback()
        finally:
            conn.execute(f'DROP OWNED BY "{login}"; DROP ROLE "{login}"')
            conn.commit()


def test_an_edited_migration_is_refused_by_name(db, tmp_path, monkeypatch):
    copy = tmp_path / "migrations"
    shutil.copytree(database.MIGRATIONS_DIR, copy)
    baseline = next(copy.glob("0001_*.sql"))
    baseline.write_text(baseline.read_text() + "\n-- an edit after release\n")
    monkeypatch.setattr(database, "MIGRATIONS_DIR", copy)
    with pytest.raises(MigrationChanged, match=baseline.name):
        apply_schema(db)


def test_a_new_migration_is_applied_once_then_the_definitions_again(db, tmp_path, monkeypatch):
    copy = tmp_path / "migrations"
    shutil.copytree(database.MIGRATIONS_DIR, copy)
    version = max(m.version for m in migrations()) + 1
    (copy / f"{version:04d}_count_applies.sql").write_text(
        "CREATE TABLE migration_probe (n integer); INSERT INTO migration_probe VALUES (1);\n")
    monkeypatch.setattr(database, "MIGRATIONS_DIR", copy)
    applied = apply_schema(db)
    assert applied[0] == f"{version:04d}_count_applies.sql"
    assert "005_aws_policy_results.sql" in applied      # the views again, after it
    assert apply_schema(db) == []
    assert db.execute("SELECT count(*) FROM migration_probe").fetchone()[0] == 1


def test_a_database_of_a_newer_release_is_refused(db):
    db.execute("INSERT INTO iam_audit_schema_migrations (version, name, checksum) "
               "VALUES (9999, '9999_from_the_future.sql', repeat('0', 64))")
    db.commit()
    with pytest.raises(MigrationChanged, match="9999_from_the_future.sql"):
        apply_schema(db)


def test_concurrent_applies_to_a_fresh_database_apply_each_migration_once(postgres, database):
    results: list = []

    def one():
        try:
            with postgres.connect(database) as conn:
                results.append(apply_schema(conn, lock_timeout="60s"))
        except Exception as exc:  # noqa: BLE001 - handed to the assertion below
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(isinstance(r, Exception) for r in results), results
    names = {m.name for m in migrations()}
    applied = [name for r in results for name in r if name in names]
    assert sorted(applied) == sorted(names)   # each by exactly one of the two
    with postgres.connect(database) as conn:
        assert recorded(conn) == [(m.version, m.name) for m in migrations()]
