"""Shared fixtures: a real embedded PostgreSQL server and the patched moto server over HTTP."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest
from iam_audit_dev.devenv.postgres import start_postgres

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Each pytest-xdist worker gets a state directory of its own: its own PostgreSQL server, emulator
# and Airflow home, so that workers never share a data directory or a metadata database.
TEST_STATE = Path(os.environ.get("IAM_AUDIT_TEST_STATE", PROJECT_ROOT / ".devenv" / "test")) \
    / os.environ.get("PYTEST_XDIST_WORKER", "main")
TEST_STATE.mkdir(parents=True, exist_ok=True)
# pgserver logs from an atexit hook after pytest closed its capture streams.
logging.raiseExceptions = False

# Airflow reads its configuration at import: point it at a throw-away home first.
os.environ.setdefault("AIRFLOW_HOME", str(TEST_STATE / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


# Directories whose tests share expensive session fixtures (one embedded stack, one clean first DAG run):
# under pytest-xdist they all run on one worker, which builds those fixtures once.
SHARED_STACK_DIRS = ("tests/e2e/",)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: unknown when it is not loaded (-p no:xdist)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` with the groups above. xdist's own loadgroup reads the group from a suffix it
    appends to each item's nodeid, which pytest 9 no longer lets a plugin change: without this hook,
    every test is its own group and each worker would build the shared stack again."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedStackScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((d for d in SHARED_STACK_DIRS if nodeid.startswith(d)), nodeid)

    return SharedStackScheduling(config, log)


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


@pytest.fixture(scope="session")
def seeded_emulator():
    """The patched moto server over HTTP, seeded with the demo organisation (1 + 3 accounts)."""
    from iam_audit_dev.emulator.process import start_emulator

    emulator = start_emulator(log_path=str(TEST_STATE / "emulator-session.log"))
    emulator.manifest = emulator.seed(accounts=3, users=8, seed=42)
    yield emulator
    emulator.stop()


@pytest.fixture()
def emulator(seeded_emulator):
    """The session emulator with no fault rules and a clean call log."""
    seeded_emulator.clear_faults()
    seeded_emulator.reset_calls()
    yield seeded_emulator
    seeded_emulator.clear_faults()


def account_of(manifest: dict, profile: str) -> str:
    """The first account id seeded with a profile ('strong' is the management account)."""
    return next(a["id"] for a in manifest["accounts"] if a["profile"] == profile)
