"""The BI views over three snapshots: latest, scores, changes, open findings."""

from decimal import Decimal

from .results import CHECK, D1, D2, D3, FW, A, B, history, put, query, user


def name(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[-1]


def test_latest_is_the_newest_verdict_of_each_resource(db):
    history(db)
    latest = {(r["account_id"], name(r["resource_id"])): r for r in query(db, "SELECT * FROM aws_policy_latest")}
    assert {k: (r["snapshot_date"], r["status"], r["is_current"]) for k, r in latest.items()} == {
        (A, "alice"): (D3, "fail", True), (A, "bob"): (D3, "fail", True), (A, "carol"): (D3, "fail", True),
        (A, "dave"): (D2, "pass", False), (A, "erin"): (D3, "fail", True), (A, "frank"): (D3, "fail", True),
        (B, "gina"): (D3, "fail", True), (B, B): (D2, "error", False),
    }
    assert all(r["effective_status"] == r["status"] for r in latest.values())
    assert latest[(A, "dave")]["reason"] == f"dave is pass on {D2}"


def test_scores_count_by_status_and_rate_pass_over_pass_and_fail(db):
    history(db)
    put(db, D2, A, A, "error", check_id="1.8", resource_type="account")
    db.commit()
    scores = {(r["snapshot_date"], r["account_id"], r["check_id"]): r for r in query(
        db, "SELECT * FROM aws_policy_scores WHERE framework = %s", (FW,))}
    d2 = scores[(D2, A, CHECK)]
    assert (d2["pass_count"], d2["fail_count"], d2["error_count"], d2["muted_count"], d2["total_count"]) == \
        (2, 2, 0, 0, 4)
    assert d2["pass_rate"] == Decimal("0.5")
    assert scores[(D3, A, CHECK)]["pass_rate"] == 0
    assert scores[(D1, A, CHECK)]["pass_rate"] == Decimal("0.4")  # alice, carol, frank fail; bob, dave pass
    assert scores[(D1, A, CHECK)]["pass_count"] == 2
    only_errors = scores[(D2, B, CHECK)]
    assert (only_errors["error_count"], only_errors["pass_rate"]) == (1, None)
    assert scores[(D2, A, "1.8")]["pass_rate"] is None
    assert d2["title"] == "MFA for console users" and d2["severity"] == "high"


def changes(db) -> set[tuple]:
    return {(r["change_type"], r["account_id"], name(r["resource_id"]), r["previous_snapshot_date"],
             r["snapshot_date"], r["previous_status"], r["current_status"])
            for r in query(db, "SELECT * FROM aws_policy_changes")}


def test_changes_between_consecutive_snapshots(db):
    history(db)
    assert changes(db) == {
        ("newly_failing", A, "bob", D1, D2, "pass", "fail"),
        ("resolved", A, "carol", D1, D2, "fail", "pass"),
        ("newly_failing", A, "carol", D2, D3, "pass", "fail"),
        ("removed_resource", A, "frank", D1, D2, "fail", None),
        ("new_resource", A, "frank", D2, D3, None, "fail"),
        ("removed_resource", A, "dave", D2, D3, "pass", None),
        ("new_resource", A, "erin", D2, D3, None, "fail"),
        # B could not be evaluated on D2: D3 is compared with D1, nothing was removed on D2
        ("newly_failing", B, "gina", D1, D3, "pass", "fail"),
    }


def test_changes_of_the_first_snapshot_are_none(db):
    put(db, D1, A, user(A, "alice"), "fail")
    db.commit()
    assert changes(db) == set()


def test_open_findings_age_over_the_current_streak(db):
    history(db)
    open_findings = {(r["account_id"], name(r["resource_id"])): r
                     for r in query(db, "SELECT * FROM aws_policy_open_findings")}
    assert {k: (r["snapshot_date"], r["first_failing_date"], r["age_days"]) for k, r in open_findings.items()} == {
        (A, "alice"): (D3, D1, 4),   # failing in every snapshot
        (A, "bob"): (D3, D2, 3),
        (A, "carol"): (D3, D3, 0),   # the pass on D2 broke the streak
        (A, "erin"): (D3, D3, 0),
        (A, "frank"): (D3, D3, 0),   # absent on D2: the streak restarts
        (B, "gina"): (D3, D3, 0),
    }
    assert open_findings[(A, "alice")]["severity"] == "high"


def test_open_findings_skip_snapshots_where_the_account_was_not_evaluated(db):
    put(db, D1, B, user(B, "gina"), "fail")
    put(db, D2, B, B, "error", resource_type="account")
    put(db, D3, B, user(B, "gina"), "fail")
    db.commit()
    (row,) = query(db, "SELECT * FROM aws_policy_open_findings")
    assert (row["first_failing_date"], row["age_days"]) == (D1, 4)


def test_open_findings_only_from_the_latest_snapshot(db):
    put(db, D1, A, user(A, "alice"), "fail")
    put(db, D2, A, user(A, "bob"), "pass")
    db.commit()
    assert query(db, "SELECT * FROM aws_policy_open_findings") == []


def test_views_are_idempotent_and_read_one_day_through_indexes(db):
    from iam_audit.database import apply_schema

    history(db)
    before = changes(db)
    apply_schema(db)
    assert changes(db) == before
    # a date filter reaches the evaluation records, not a scan of the verdict history
    db.execute("SET enable_seqscan = off")
    plan = "\n".join(r[0] for r in db.execute(
        "EXPLAIN SELECT * FROM aws_policy_changes WHERE snapshot_date = %s", (D3,)).fetchall())
    db.rollback()
    assert "Index" in plan and "Seq Scan on aws_policy_verdicts" not in plan
