"""prepare_database and concurrent runs against a real PostgreSQL: an unchanged schema issues no
DDL, a BI session idle in a transaction cannot hang the run, and two writers of one date never overlap."""

from __future__ import annotations

import threading

import psycopg
import pytest

from iam_audit.database import (
    SchemaLocked,
    SnapshotDateLocked,
    apply_schema,
    run_check,
    schema_fingerprint,
    snapshot_date_lock,
)

DATE = "2026-11-01"


def in_thread(target, *args, **kwargs):
    """Run target in a thread; the join bound only keeps a regression from hanging the suite."""
    outcome: dict = {}

    def body():
        try:
            outcome["value"] = target(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(300)
    assert not thread.is_alive(), "hung"
    return outcome


@pytest.fixture()
def bi_session(postgres, database, db):
    """A dashboard session left idle in a transaction after reading a view (holds its lock)."""
    conn = postgres.connect(database)
    conn.execute("SELECT count(*) FROM aws_policy_latest").fetchone()
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    yield conn
    conn.close()


def test_unchanged_schema_issues_no_ddl(db):
    db.execute("CREATE TABLE ddl_log (tag text)")
    db.execute("""CREATE FUNCTION log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
                  BEGIN INSERT INTO ddl_log VALUES (tg_tag); END $$""")
    db.execute("CREATE EVENT TRIGGER log_ddl ON ddl_command_start EXECUTE FUNCTION log_ddl()")
    db.commit()
    assert apply_schema(db) == []
    assert db.execute("SELECT count(*) FROM ddl_log").fetchone()[0] == 0
    state = db.execute("SELECT fingerprint FROM iam_audit_schema_state").fetchone()[0]
    assert state == schema_fingerprint()
    assert apply_schema(db, force=True)          # a forced apply does run the DDL
    assert db.execute("SELECT count(*) FROM ddl_log").fetchone()[0] > 0


def test_unchanged_schema_does_not_wait_for_an_idle_bi_session(db, bi_session):
    outcome = in_thread(apply_schema, db)
    assert outcome.get("value") == [], outcome


def test_changed_schema_gives_up_on_an_idle_bi_session_with_a_clear_message(db, bi_session):
    db.execute("UPDATE iam_audit_schema_state SET fingerprint = 'an older schema'")
    db.commit()
    outcome = in_thread(apply_schema, db, lock_timeout="200ms", attempts=2)
    error = outcome.get("error")
    assert isinstance(error, SchemaLocked), outcome
    message = str(error)
    assert f"pid {bi_session.info.backend_pid}" in message and "idle in transaction" in message
    assert "pg_terminate_backend" in message
    # nothing half-applied, and the BI session's reads still work
    assert db.execute("SELECT fingerprint FROM iam_audit_schema_state").fetchone()[0] == "an older schema"
    assert bi_session.execute("SELECT count(*) FROM aws_policy_scores").fetchone() is not None
    bi_session.rollback()
    assert apply_schema(db)   # once the session is gone the change applies


def test_a_second_writer_of_the_date_fails_clearly(postgres, database, db):
    def connect():
        return postgres.connect(database)

    with snapshot_date_lock(connect, DATE):
        outcome = in_thread(lambda: snapshot_date_lock(connect, DATE, wait="300ms").__enter__())
        assert isinstance(outcome.get("error"), SnapshotDateLocked), outcome
        assert f"snapshot {DATE}" in str(outcome["error"]) and "pid " in str(outcome["error"])
        # a check of the date cannot write while the load holds the date
        conn = connect()
        conn.execute("SET iam_audit.date_lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable, match="another run is writing this date"):
            run_check(conn, "root_mfa", DATE)
        conn.close()
        # another date is not blocked
        with snapshot_date_lock(connect, "2026-11-02", wait="300ms"):
            pass
    # released: the next writer goes through
    with snapshot_date_lock(connect, DATE, wait="300ms"):
        pass


def test_the_second_writer_waits_for_the_first(postgres, database, db):
    def connect():
        return postgres.connect(database)

    order = []
    first_holds, release = threading.Event(), threading.Event()

    def first():
        with snapshot_date_lock(connect, DATE):
            order.append("first in")
            first_holds.set()
            release.wait(60)
            order.append("first out")

    def second():
        first_holds.wait(60)
        with snapshot_date_lock(connect, DATE, wait="2min"):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    first_holds.wait(60)
    # the second writer is waiting on the date's lock (seen from the server, no sleep)
    waiting = db.execute
    for _ in range(600):
        waiting_count = waiting("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                "AND cardinality(pg_blocking_pids(pid)) > 0").fetchone()[0]
        db.rollback()
        if waiting_count:
            break
        threading.Event().wait(0.1)
    assert waiting_count == 1
    release.set()
    for t in threads:
        t.join(120)
    assert order == ["first in", "first out", "second in"]


def test_checks_of_one_run_still_run_in_parallel(postgres, database, db):
    a, b = postgres.connect(database), postgres.connect(database)
    a.execute("SELECT iam_audit_lock_for_check(%s::date, 'root_mfa')", (DATE,))
    b.execute("SET lock_timeout = '300ms'")
    b.execute("SELECT iam_audit_lock_for_check(%s::date, 'root_access_keys')", (DATE,))   # no wait
    b.rollback()
    b.execute("SET iam_audit.date_lock_timeout = '300ms'")
    with pytest.raises(psycopg.errors.LockNotAvailable):
        b.execute("SELECT iam_audit_lock_for_check(%s::date, 'root_mfa')", (DATE,))     # the same check
    a.close()
    b.close()


def test_two_concurrent_loads_of_one_date_do_not_interleave(emulator, bucket, postgres, database, db,
                                                             monkeypatch):
    """Two real load tasks (tasks.load, through Airflow connections) of the same date at once: every
    staging write happens while its own run holds the date, and one run's writes all come first."""
    from datetime import date

    from iam_audit import tasks
    from iam_audit.config import AuditConfig
    from iam_audit.plan import RunPlan
    from tests.conftest import account_of
    from tests.integration.test_storage_and_load_faults import SNAPSHOT, extract

    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", postgres.airflow_conn_json(database))
    accounts = [account_of(emulator.manifest, "weak"), account_of(emulator.manifest, "strong")]
    for account_id in accounts:
        extract(emulator, bucket, account_id, "run-1")
    # Every row written to iam_stage.accounts records the writing session and the transaction holding
    # the date's lock row FOR UPDATE at that moment (its xmax while locked; NULL: nobody).
    db.execute("""
        CREATE TABLE write_log (seq bigserial, pid int, holder text);
        CREATE FUNCTION log_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO write_log (pid, holder) SELECT pg_backend_pid(), (
                SELECT CASE WHEN l.xmax::text <> '0' THEN l.xmax::text END FROM iam_audit_locks l
                WHERE l.lock_name = iam_audit_lock_name(NEW.snapshot_date));
            RETURN NEW;
        END $$;
        CREATE TRIGGER log_write BEFORE INSERT ON iam_stage.accounts FOR EACH ROW EXECUTE FUNCTION log_write();
    """)
    db.commit()
    plans = [RunPlan(snapshot_date=date.fromisoformat(SNAPSHOT), run_id=run_id, mode="replay",
                     config=AuditConfig(bucket=bucket)).to_xcom()
             for run_id in ("run-a", "run-b")]
    outcomes = []
    threads = [threading.Thread(target=lambda p=plan: outcomes.append(in_thread(
        tasks.load, p, [{"account_id": a} for a in accounts], "aws_default", "postgres_default")))
        for plan in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert [o.get("error") for o in outcomes] == [None, None], outcomes
    log = db.execute("SELECT pid, holder FROM write_log ORDER BY seq").fetchall()
    assert len(log) == 2 * len(accounts) and all(holder is not None for _, holder in log), log
    # each run's writes happen under its own hold of the date (two writers, two distinct holders,
    # never one holder for both), and one run's writes all come before the other's
    holder_of = {}
    for pid, holder in log:
        assert holder_of.setdefault(pid, holder) == holder
    assert len(set(holder_of.values())) == len(holder_of) == 2
    holders = [holder for _, holder in log]
    assert holders == sorted(holders, key=holders.index)


def test_a_reader_cannot_take_or_block_the_pipelines_locks(postgres, database, db):
    """A member of compliance_reader (a BI login) can neither lock the pipeline's lock rows nor stall
    it with the advisory lock keys used before."""
    import uuid

    login = f"bi_{uuid.uuid4().hex[:10]}"
    db.execute(f'CREATE ROLE "{login}" LOGIN IN ROLE compliance_reader')
    db.commit()
    reader = psycopg.connect(f"host={postgres.socket_dir} port={postgres.port} user={login} dbname={database}")
    try:
        for statement in (f"SELECT iam_audit_take_lock(iam_audit_lock_name('{DATE}'))",
                          "SELECT * FROM iam_audit_locks FOR SHARE",
                          "LOCK TABLE iam_audit_locks IN ACCESS EXCLUSIVE MODE"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute(statement)
            reader.rollback()
        # what stalled the pipeline before: the date's advisory key, and the schema's, held by the reader
        old_key = "hashtextextended('aws_iam_cis snapshot ' || %s::date::text, 0)"
        reader.execute(f"SELECT pg_advisory_lock({old_key})", (DATE,))  # noqa: S608
        reader.execute("SELECT pg_advisory_lock(%s)", (0x1A4A_5C15,))

        def connect():
            return postgres.connect(database)

        with snapshot_date_lock(connect, DATE, wait="300ms"):
            pass
        conn = connect()
        conn.execute("SET iam_audit.date_lock_timeout = '300ms'")
        run_check(conn, "root_mfa", DATE)
        conn.close()
        db.execute("UPDATE iam_audit_schema_state SET fingerprint = 'an older schema'")
        db.commit()
        assert apply_schema(db, lock_timeout="300ms", attempts=1)
    finally:
        reader.close()
        db.execute(f'DROP OWNED BY "{login}"; DROP ROLE "{login}"')
        db.commit()


def test_login_roles_the_project_creates_have_timeouts_and_a_connection_limit(postgres, database, db, tmp_path):
    import uuid

    login = f"reader_limits_{uuid.uuid4().hex[:8]}"
    postgres.ensure_login(login, "compliance_reader", tmp_path / "pw")
    row = db.execute("SELECT rolconnlimit, rolconfig FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
    limit, config = row
    settings = dict(item.split("=", 1) for item in config or [])
    assert 0 < limit <= 20
    assert settings.get("statement_timeout") and settings["statement_timeout"] != "0"
    assert settings.get("idle_in_transaction_session_timeout") not in (None, "0")
    assert settings.get("lock_timeout") and settings["lock_timeout"] != "0"
    # and a session of that login gets them
    password = (tmp_path / "pw").read_text().strip()
    with psycopg.connect(f"host={postgres.socket_dir} port={postgres.port} user={login} password={password} "
                         f"dbname={database}") as conn:
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] != "0"
    db.execute(f'DROP ROLE "{login}"')
    db.commit()
