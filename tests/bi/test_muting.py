"""Exceptions mute matching fails in the views until they expire; the raw table never changes."""

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
    add_exception(db, expires_on=D1.replace(day=1, month=10))   # matches everything, expired before D1
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
            db.execute("INSERT INTO aws_policy_exceptions (reason, expires_on) VALUES (%s, %s)", values)
        db.rollback()
