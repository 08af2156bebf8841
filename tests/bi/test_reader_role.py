"""compliance_reader can read results and views, not staging, and cannot write."""

import uuid

import psycopg
import pytest

from .results import history


@pytest.fixture()
def reader(db, postgres, database):
    history(db)
    login = f"bi_{uuid.uuid4().hex[:10]}"
    db.execute(f'CREATE ROLE "{login}" LOGIN IN ROLE compliance_reader')
    db.commit()
    conn = psycopg.connect(f"host={postgres.socket_dir} user={login} dbname={database}")
    yield conn
    conn.close()
    db.execute(f'DROP ROLE "{login}"')
    db.commit()


def test_role_is_nologin(db):
    assert db.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'compliance_reader'").fetchone() == (False,)


@pytest.mark.parametrize("relation", [
    "aws_policy_results", "aws_policy_controls", "aws_policy_exceptions", "aws_policy_results_effective",
    "aws_policy_evaluated_snapshots", "aws_policy_latest", "aws_policy_scores", "aws_policy_changes",
    "aws_policy_open_findings", "aws_policy_open_problems", "aws_policy_accounts",
])
def test_reader_reads_tables_and_views(reader, relation):
    reader.execute(f"SELECT count(*) FROM {relation}").fetchone()  # noqa: S608


def test_every_view_is_granted(db):
    missing = db.execute(
        """SELECT viewname FROM pg_views WHERE schemaname = current_schema() AND viewname LIKE 'aws\\_policy\\_%%'
           AND NOT has_table_privilege('compliance_reader', quote_ident(viewname), 'SELECT')""").fetchall()
    assert missing == []


def test_reader_cannot_read_staging(reader):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute("SELECT count(*) FROM iam_stage.accounts")


@pytest.mark.parametrize("statement", [
    "DELETE FROM aws_policy_results",
    "UPDATE aws_policy_results SET status = 'pass'",
    "INSERT INTO aws_policy_exceptions (reason, expires_on) VALUES ('x', '2030-01-01')",
    "CREATE TABLE public.sneaky (id int)",
])
def test_reader_cannot_write(reader, statement):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute(statement)
