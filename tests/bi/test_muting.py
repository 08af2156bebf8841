"""Exceptions mute matching fails in the views until they expire; the raw table never changes."""

from datetime import date, timedelta
from decimal import Decimal

import psycopg
import pytest

from .results import CHECK, D1, D2, D3, FW, A, B, add_exception, history, put, query, user


def raw(db) -> list[tuple]:
    return db.execute("SELECT snapshot_date, account_id, resource_id, status FROM aws_policy_results "
                      "ORDER BY 1, 2, 3").fetchall()


def effective(db, snapshot_date) -> dict:
    return {r["resource_id"].rsplit("/", 1)[-1]: r["effective_status"] for r in query(
        db, "SELECT * FROM aws_policy_results_effective WHERE snapshot_date = %s AND account_id = %s",
        (snapshot_date, A))}


def test_exception_mutes_until_it_expires(db):
    history(db)
    before = raw(db)
    exception_id = add_exception(db, account_id=A, framework=FW, check_id=CHECK,
                                 resource_pattern="arn:aws:iam::%:user/alice", expires_on=D2,
                                 reason="break-glass user, MFA in the safe")
    assert raw(db) == before
    assert effective(db, D1)["alice"] == effective(db, D2)["alice"] == "muted"
    assert effective(db, D3)["alice"] == "fail"      # D3 > expires_on
    assert effective(db, D2)["bob"] == "fail"         # the pattern does not match bob
    assert effective(db, D2)["carol"] == "pass"       # passes are never muted

    latest = {r["resource_id"]: r for r in query(db, "SELECT * FROM aws_policy_latest WHERE account_id = %s", (A,))}
    assert latest[user(A, "alice")]["effective_status"] == "fail"
    assert latest[user(A, "alice")]["status"] == "fail"

    scores = {r["snapshot_date"]: r for r in query(
        db, "SELECT * FROM aws_policy_scores WHERE account_id = %s", (A,))}
    assert (scores[D2]["pass_count"], scores[D2]["fail_count"], scores[D2]["muted_count"]) == (2, 1, 1)
    assert scores[D2]["pass_rate"] == Decimal("0.6667")   # muted fails are not in the denominator

    changes = {(r["change_type"], r["resource_id"], r["snapshot_date"]): r for r in query(
        db, "SELECT * FROM aws_policy_changes WHERE account_id = %s", (A,))}
    expired = changes[("newly_failing", user(A, "alice"), D3)]   # the exception expired
    assert (expired["previous_status"], expired["current_status"]) == ("muted", "fail")

    opened = {r["resource_id"]: r for r in query(db, "SELECT * FROM aws_policy_open_findings")}
    assert opened[user(A, "alice")]["first_failing_date"] == D1    # muted days were failing days
    assert raw(db) == before
    assert exception_id


def test_unexpired_exception_keeps_finding_out_of_open_findings(db):
    history(db)
    add_exception(db, account_id=A, resource_pattern="%/alice", expires_on=D3)
    assert effective(db, D3)["alice"] == "muted"
    opened = {r["resource_id"] for r in query(db, "SELECT resource_id FROM aws_policy_open_findings")}
    assert user(A, "alice") not in opened and user(A, "bob") in opened
    (row,) = query(db, "SELECT * FROM aws_policy_latest WHERE resource_id = %s", (user(A, "alice"),))
    assert (row["effective_status"], row["exception_reason"], row["exception_expires_on"]) == \
        ("muted", "accepted risk", D3)


def test_expired_exception_does_not_mute(db):
    history(db)
    add_exception(db, expires_on=D1.replace(day=1, month=10), all_scope=True)   # everything, expired before D1
    for day in (D1, D2, D3):
        assert "muted" not in effective(db, day).values()


def test_null_columns_match_anything_and_set_columns_must_match(db):
    history(db)
    add_exception(db, framework="cis_v1.2.0", expires_on=D3)            # other framework
    add_exception(db, account_id="333333333333", expires_on=D3)          # other account
    add_exception(db, check_id="1.14", expires_on=D3)                    # other control
    add_exception(db, resource_pattern="%/nobody", expires_on=D3)        # other resource
    assert "muted" not in effective(db, D3).values()
    add_exception(db, account_id=A, expires_on=D3)                       # the whole account
    assert set(effective(db, D3).values()) == {"muted"}
    # gina in B is untouched
    (gina,) = query(db, "SELECT * FROM aws_policy_results_effective WHERE snapshot_date = %s AND account_id = %s",
                    (D3, B))
    assert gina["effective_status"] == "fail"


def test_like_wildcards(db):
    put(db, D1, A, user(A, "svc_a"), "fail")
    put(db, D1, A, user(A, "svcXa"), "fail")
    put(db, D1, A, user(A, "svc_ab"), "fail")
    db.commit()
    add_exception(db, resource_pattern=r"%:user/svc\_a", expires_on=D1)   # escaped underscore: literal
    assert effective(db, D1) == {"svc_a": "muted", "svcXa": "fail", "svc_ab": "fail"}


def test_reason_and_expiry_are_required(db):
    for values in ((None, D1), ("  ", D1), ("why", None)):
        with pytest.raises(psycopg.errors.IntegrityError):
            db.execute("INSERT INTO aws_policy_exceptions (account_id, reason, expires_on) VALUES (%s, %s, %s)",
                       (A, *values))
        db.rollback()


def insert(db, sql: str, params=()):
    row = db.execute(sql, params).fetchone()
    db.commit()
    return row


def test_an_exception_without_scope_is_refused_unless_all_scope_is_explicit(db):
    history(db)
    later = date.today() + timedelta(days=30)
    with pytest.raises(psycopg.errors.CheckViolation, match="aws_policy_exceptions_scope"):
        insert(db, "INSERT INTO aws_policy_exceptions (reason, expires_on) VALUES ('oops', %s)", (later,))
    db.rollback()
    with pytest.raises(psycopg.errors.CheckViolation, match="aws_policy_exceptions_scope"):
        insert(db, "INSERT INTO aws_policy_exceptions (account_id, all_scope, reason, expires_on) "
                   "VALUES (%s, true, 'contradiction', %s)", (A, later))
    db.rollback()
    assert "muted" not in effective(db, D3).values()
    add_exception(db, expires_on=D3, all_scope=True, reason="migration freeze")
    statuses = set(effective(db, D3).values())
    assert "muted" in statuses and "fail" not in statuses


def test_an_exception_does_not_mute_snapshots_taken_before_it_existed(db):
    history(db)
    add_exception(db, account_id=A, resource_pattern="%/alice", expires_on=D3, created_on=D2)
    assert effective(db, D1)["alice"] == "fail"     # before the exception: stays a fail
    assert effective(db, D2)["alice"] == effective(db, D3)["alice"] == "muted"


def test_created_at_is_the_databases_clock_and_cannot_change(db):
    with pytest.raises(psycopg.errors.CheckViolation, match="created_at is set by the database"):
        insert(db, "INSERT INTO aws_policy_exceptions (account_id, reason, expires_on, created_at) "
                   "VALUES (%s, 'back-dated', %s, %s)", (A, date.today(), D1))
    db.rollback()
    (exception_id, created_at) = insert(
        db, "INSERT INTO aws_policy_exceptions (account_id, reason, expires_on) VALUES (%s, 'now', %s) "
            "RETURNING id, created_at", (A, date.today()))
    assert created_at.date() >= date.today() - timedelta(days=1)
    with pytest.raises(psycopg.errors.CheckViolation, match="cannot change"):
        insert(db, "UPDATE aws_policy_exceptions SET created_at = %s WHERE id = %s RETURNING id", (D1, exception_id))
    db.rollback()


def test_expiry_is_capped_and_the_cap_is_configurable(db):
    today = db.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]
    sql = "INSERT INTO aws_policy_exceptions (account_id, reason, expires_on) VALUES (%s, 'r', %s) RETURNING id"
    with pytest.raises(psycopg.errors.CheckViolation, match="more than 365 days"):
        insert(db, sql, (A, today + timedelta(days=366)))
    db.rollback()
    (exception_id,) = insert(db, sql, (A, today + timedelta(days=365)))
    with pytest.raises(psycopg.errors.CheckViolation, match="more than 365 days"):   # no extension past it
        insert(db, "UPDATE aws_policy_exceptions SET expires_on = expires_on + 1 WHERE id = %s RETURNING id",
               (exception_id,))
    db.rollback()
    insert(db, "UPDATE aws_policy_exception_policy SET max_expiry_days = 30 RETURNING 1")
    with pytest.raises(psycopg.errors.CheckViolation, match="more than 30 days"):
        insert(db, sql, (A, today + timedelta(days=31)))
    db.rollback()
    assert insert(db, sql, (A, today + timedelta(days=30)))


def test_existing_exceptions_are_migrated_safely(db):
    from iam_audit.database import apply_schema

    # the table as it was before: no all_scope, no guard, no cap, in a database of that layout
    # (which has no record of applied migrations either)
    db.execute("DROP TABLE aws_policy_exceptions CASCADE")
    db.execute("DROP TABLE iam_audit_schema_migrations")
    db.execute("""CREATE TABLE aws_policy_exceptions (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, account_id text, framework text,
        check_id text, resource_pattern text, reason text NOT NULL, expires_on date NOT NULL,
        created_by text NOT NULL DEFAULT current_user, created_at timestamptz NOT NULL DEFAULT now())""")
    db.execute("""INSERT INTO aws_policy_exceptions (account_id, reason, expires_on, created_at) VALUES
        (NULL, 'mutes everything', '2026-12-01', '2026-10-01'),
        (%s, 'for ever', '2099-01-01', '2026-10-01'),
        (%s, 'fine', '2026-11-30', '2026-10-01')""", (A, B))
    db.commit()
    apply_schema(db, force=True)
    rows = db.execute("SELECT reason, all_scope, expires_on FROM aws_policy_exceptions ORDER BY id").fetchall()
    assert rows == [("mutes everything", True, date(2026, 12, 1)),
                    ("for ever", False, date(2026, 10, 1) + timedelta(days=365)),
                    ("fine", False, date(2026, 11, 30))]
    # the views work on the migrated table
    history(db)
    assert effective(db, D1)["alice"] == "muted"


def test_framework_scores_count_each_frameworks_muted_fails_in_that_framework_only(db):
    """One control in two frameworks, an exception scoped to one of them: the other framework's
    counts keep every fail, and neither framework counts the muted fail twice."""
    other = "cis_v2.0.0"
    for framework in (FW, other):
        put(db, D1, A, user(A, "alice"), "fail", framework=framework)
        put(db, D1, A, user(A, "bob"), "fail", framework=framework)
        put(db, D1, A, user(A, "carol"), "pass", framework=framework)
    db.commit()
    add_exception(db, account_id=A, framework=FW, check_id=CHECK, resource_pattern="%/alice", expires_on=D3)
    rows = {r["framework"]: r for r in query(
        db, "SELECT * FROM aws_policy_framework_scores WHERE snapshot_date = %s", (D1,))}
    assert set(rows) == {FW, other}
    counts = {fw: (r["pass_count"], r["fail_count"], r["muted_count"], r["raw_fail_count"]) for fw, r in rows.items()}
    assert counts == {FW: (1, 1, 1, 2), other: (1, 2, 0, 2)}


def test_a_temporary_table_cannot_lift_the_expiry_cap(db):
    """The guard runs SECURITY DEFINER: its search_path is pinned (pg_catalog, the schema, pg_temp last),
    so a writer's temporary table named like the cap's table is not what it reads."""
    config = db.execute("SELECT proconfig FROM pg_proc WHERE proname = 'aws_policy_exceptions_guard'").fetchone()[0]
    assert config == [f"search_path=pg_catalog, {db.execute('SELECT current_schema()').fetchone()[0]}, pg_temp"]
    today = db.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]
    db.execute("CREATE TEMP TABLE aws_policy_exception_policy (max_expiry_days integer)")
    db.execute("INSERT INTO aws_policy_exception_policy VALUES (100000)")
    with pytest.raises(psycopg.errors.CheckViolation, match="more than 365 days"):
        insert(db, "INSERT INTO aws_policy_exceptions (account_id, reason, expires_on) VALUES (%s, 'r', %s) "
                   "RETURNING id", (A, today + timedelta(days=5000)))
    db.rollback()
