"""Shared fixtures: a real embedded PostgreSQL server and the patched moto server over HTTP."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from iam_audit.devenv.postgres import start_postgres

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TEST_STATE = Path(os.environ.get("IAM_AUDIT_TEST_STATE", PROJECT_ROOT / ".devenv" / "test"))


@pytest.fixture(scope="session")
def postgres():
    """One embedded PostgreSQL server for the whole test session."""
    return start_postgres(TEST_STATE / "pg")


@pytest.fixture()
def database(postgres):
    """A fresh, empty database per test; yields its name."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    yield name
    import psycopg

    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def db(postgres, database):
    """A psycopg connection to a fresh database with the schema and catalogue applied."""
    from iam_audit.database import apply_schema

    conn = postgres.connect(database)
    apply_schema(conn)
    yield conn
    conn.close()
