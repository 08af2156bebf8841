"""The summary (summarize task) and the HTML report (publish_report) read the date's verdicts
from the stored counts and per variant (iam_audit.evaluate.day_verdicts) instead of spreading every
verdict over its frameworks: on a multi-day history with churn, account-level and per-resource
errors, several-variant logics, exceptions of every shape and a database upgraded from the
earlier design (no control_logic), they give exactly what the earlier statements over
aws_policy_results(_effective) gave, kept below as the reference: every date, every field,
row for row, the logged text and the report's HTML."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from iam_audit.evaluate.catalogue import control_sort_key, framework_sort_key, load_catalogue
from iam_audit.reporting.report import SEVERITY_ORDER, TOP_FAILING, ReportData, load_report_data, render_report
from iam_audit.reporting.summary import Summary, _score, build_summary, format_summary

from .history import ACCOUNTS, run_new
from .test_equivalence import DAYS, stage_history
from .test_muted_history import add_exception

# ---- the reference: build_summary and load_report_data as they were before day_verdicts -------------

_COUNTS = """count(*) FILTER (WHERE effective_status = 'pass'), count(*) FILTER (WHERE effective_status = 'fail'),
             count(*) FILTER (WHERE effective_status = 'error'), count(*) FILTER (WHERE effective_status = 'muted')"""


def earlier_summary(conn, snapshot_date, account_ids=None, worst_per_account: int = 3) -> Summary:
    where = "snapshot_date = %s" + (" AND account_id = ANY(%s)" if account_ids else "")
    params = [str(snapshot_date)] + ([list(account_ids)] if account_ids else [])
    counts = conn.execute(
        f"""SELECT framework, check_id, title, {_COUNTS}
            FROM aws_policy_results_effective WHERE {where} GROUP BY 1, 2, 3""",  # noqa: S608
        params,
    ).fetchall()
    by_key = {(f, c): (t, p, fl, e, m) for f, c, t, p, fl, e, m in counts}
    controls = []
    for control in load_catalogue().all_controls():
        title, passed, failed, errors, muted = by_key.get((control.framework, control.check_id),
                                                          (control.title, 0, 0, 0, 0))
        controls.append({
            "framework": control.framework, "check_id": control.check_id, "title": title,
            "pass": passed, "fail": failed, "error": errors, "muted": muted, "manual": control.logic is None,
        })
    controls.sort(key=lambda c: (framework_sort_key(c["framework"]), control_sort_key(c["check_id"])))
    worst_counts = {logic: (p, f, e) for logic, p, f, e in conn.execute(
        f"""SELECT control_logic, count(*) FILTER (WHERE worst = 1), count(*) FILTER (WHERE worst = 2),
                   count(*) FILTER (WHERE worst = 3)
            FROM (SELECT control_logic, account_id, resource_id,
                         max(CASE status WHEN 'pass' THEN 1 WHEN 'fail' THEN 2 WHEN 'error' THEN 3 END) AS worst
                  FROM aws_policy_results WHERE {where} GROUP BY 1, 2, 3) r
            GROUP BY 1""",  # noqa: S608
        params,
    ).fetchall()}
    logics = []
    for check in load_catalogue().checks:
        passed, failed, errors = worst_counts.get(check.logic, (0, 0, 0))
        cis = [c for c in check.controls if c.framework.startswith("cis_")]
        newest = max(cis, key=lambda c: framework_sort_key(c.framework)) if cis else check.controls[0]
        logics.append({
            "logic": check.logic, "severity": check.severity, "title": newest.title,
            "ids": {c.framework: c.check_id for c in check.controls},
            "pass": passed, "fail": failed, "error": errors,
        })
    accounts = []
    for account_id, name, passed, failed, errors, muted, latest, age, stale in conn.execute(
        f"""SELECT r.account_id, max(a.account_name), {_COUNTS},
                   max(f.latest_snapshot_date), max(f.snapshot_age_days), bool_or(f.is_stale IS NOT FALSE)
            FROM aws_policy_results_effective r
            LEFT JOIN iam_stage.accounts a USING (snapshot_date, account_id)
            LEFT JOIN aws_policy_account_freshness f ON f.account_id = r.account_id
            WHERE r.{where.replace(' AND account_id', ' AND r.account_id')} GROUP BY 1 ORDER BY 1""",  # noqa: S608
        params,
    ).fetchall():
        accounts.append({
            "account_id": account_id, "account_name": name or "", "pass": passed, "fail": failed,
            "error": errors, "muted": muted, "score": _score(passed, failed),
            "latest_snapshot_date": latest, "snapshot_age_days": age, "stale": bool(stale),
        })
    worst = [
        dict(zip(("account_id", "framework", "check_id", "severity", "resource_id", "reason"), row, strict=True))
        for row in conn.execute(
            f"""SELECT account_id, framework, check_id, severity, resource_id, reason FROM (
                  SELECT *, row_number() OVER (
                      PARTITION BY account_id
                      ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1
                                             WHEN 'medium' THEN 2 ELSE 3 END, framework DESC, check_id,
                               resource_id) AS n
                  FROM (SELECT DISTINCT ON (account_id, control_logic, resource_id) *
                        FROM aws_policy_results_effective
                        WHERE {where} AND effective_status = 'fail'
                        ORDER BY account_id, control_logic, resource_id, framework DESC) d
                ) ranked WHERE n <= %s ORDER BY account_id, n""",  # noqa: S608
            params + [worst_per_account],
        ).fetchall()
    ]
    extraction_errors = [
        dict(zip(("account_id", "dataset", "error_code", "error_message"), row, strict=True))
        for row in conn.execute(
            f"""SELECT account_id, dataset, error_code, error_message FROM iam_stage.extraction_status
                WHERE {where} AND status = 'error' ORDER BY 1, 2""",  # noqa: S608
            params,
        ).fetchall()
    ]
    load_errors = [
        {"account_id": account_id, "load_error": load_error}
        for account_id, load_error in conn.execute(
            f"""SELECT account_id, load_error FROM iam_stage.accounts
                WHERE {where} AND load_error IS NOT NULL ORDER BY 1""",  # noqa: S608
            params,
        ).fetchall()
    ]
    return Summary(str(snapshot_date), controls, accounts, worst, extraction_errors, logics=logics,
                   load_errors=load_errors)


def _rows(conn, sql: str, params) -> list[dict]:
    cur = conn.execute(sql, params)
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


_SEVERITY_SQL = "CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END"


def earlier_report_data(conn, day) -> ReportData:
    from iam_audit.reporting.report import Counts

    day = str(day)
    cells = {
        (r["framework"], r["check_id"], r["account_id"]): Counts(r["pass_count"], r["fail_count"],
                                                                 r["error_count"], r["muted_count"])
        for r in _rows(conn, "SELECT * FROM aws_policy_scores WHERE snapshot_date = %s", (day,))
    }
    names = {r["account_id"]: r["account_name"] or "" for r in _rows(
        conn, "SELECT account_id, account_name FROM iam_stage.accounts WHERE snapshot_date = %s", (day,))}
    accounts = {a: names.get(a, "") for a in sorted({a for (_, _, a) in cells} | set(names))}
    controls = [
        {**r, "manual": r["logic"] is None}
        for r in _rows(conn, "SELECT framework, check_id, title, severity, logic FROM aws_policy_controls", ())
    ]
    known = {(c["framework"], c["check_id"]) for c in controls}
    for framework, check_id, _ in cells:
        if (framework, check_id) not in known:
            known.add((framework, check_id))
            controls.append({"framework": framework, "check_id": check_id, "title": "", "severity": "",
                             "logic": None, "manual": False})
    controls.sort(key=lambda c: (framework_sort_key(c["framework"]), control_sort_key(c["check_id"])))
    frameworks = sorted({c["framework"] for c in controls if not c["manual"]}, key=framework_sort_key)
    failing = _rows(conn, f"""
        SELECT account_id, resource_id, max(resource_type) AS resource_type,
               min({_SEVERITY_SQL}) AS severity_rank,
               string_agg(framework || ' ' || check_id, ', ' ORDER BY framework, check_id) AS controls,
               (array_agg(title ORDER BY framework DESC))[1] AS title,
               (array_agg(reason ORDER BY framework DESC))[1] AS reason
        FROM aws_policy_results_effective
        WHERE snapshot_date = %s AND effective_status = 'fail'
        GROUP BY account_id, coalesce(control_logic, check_id), resource_id
        ORDER BY severity_rank, account_id, controls, resource_id
        LIMIT %s""", (day, TOP_FAILING))  # noqa: S608
    for row in failing:
        row["severity"] = SEVERITY_ORDER[min(row.pop("severity_rank"), 3)]
    errors = _rows(conn, """
        SELECT account_id, reason,
               string_agg(framework || ' ' || check_id, ', ' ORDER BY framework, check_id) AS controls
        FROM aws_policy_results
        WHERE snapshot_date = %s AND status = 'error'
        GROUP BY account_id, reason ORDER BY account_id, reason""", (day,))
    muted = _rows(conn, """
        SELECT account_id, framework, check_id, resource_id, exception_reason, exception_expires_on
        FROM aws_policy_results_effective
        WHERE snapshot_date = %s AND effective_status = 'muted'
        ORDER BY exception_expires_on, account_id, framework, check_id, resource_id""", (day,))
    freshness = {r["account_id"]: r for r in _rows(
        conn, "SELECT * FROM aws_policy_account_freshness WHERE account_id = ANY(%s)", (list(accounts),))}
    return ReportData(day, accounts, frameworks, controls, cells, failing, errors, muted, freshness)


# ---- the comparison ----------------------------------------------------------------------------------

def assert_same(db, context: str, top_failing: int | None = None) -> dict:
    """Every date, with and without an account filter and with another worst_per_account; returns
    how much of each part was compared (so the test can see the history exercises it)."""
    seen = {"worst": 0, "failing": 0, "errors": 0, "muted": 0, "multi_variant_worst": 0, "accounts": 0}
    for day in DAYS:
        for account_ids, n in ((None, 3), ([ACCOUNTS[0], ACCOUNTS[2]], 3), (None, 1000), ([ACCOUNTS[1]], 1)):
            new, old = build_summary(db, day, account_ids, n), earlier_summary(db, day, account_ids, n)
            for part in ("controls", "accounts", "logics", "worst", "extraction_errors", "load_errors"):
                assert getattr(new, part) == getattr(old, part), f"{context}, {day}, {account_ids}, {n}: {part}"
            # the headline (findings, tests/bi/test_headline.py) is new: the earlier statements had none
            assert new.headline is not None and old.headline is None
            assert replace(new, headline=None) == old
            assert format_summary(replace(new, headline=None)) == format_summary(old)
            seen["worst"] += len(new.worst)
            seen["accounts"] += len(new.accounts)
        new, old = load_report_data(db, day), earlier_report_data(db, day)
        for part in ("accounts", "frameworks", "controls", "cells", "failing", "errors", "muted", "freshness"):
            assert getattr(new, part) == getattr(old, part), f"{context}, {day}: report {part}"
        assert new.headline is not None and old.headline is None
        assert render_report(replace(new, headline=None)) == render_report(old), f"{context}, {day}: report HTML"
        seen["failing"] += len(new.failing)
        seen["errors"] += len(new.errors)
        seen["muted"] += len(new.muted)
    return seen


def test_summary_and_report_equal_the_earlier_statements(db):
    stage_history(db)
    for day in DAYS:
        run_new(db, day, f"run-{day}")
    # logics answered by several variants (different params per framework) disagree on some resources:
    # their worst verdict per resource is not any one variant's
    multi = db.execute("""
        SELECT count(*) FROM (
            SELECT r.snapshot_date, r.control_logic, r.account_id, r.resource_id
            FROM aws_policy_results r GROUP BY 1, 2, 3, 4 HAVING count(DISTINCT r.status) > 1) d""").fetchone()[0]
    assert multi > 0
    seen = assert_same(db, "no exceptions")
    assert seen["worst"] and seen["failing"] and seen["errors"] and seen["accounts"] and not seen["muted"]

    a1, a2, a3 = ACCOUNTS
    first, second, middle, fourth, last = DAYS
    before = first - timedelta(days=30)
    # exceptions of every shape, overlapping: a pattern in one account's check, a pattern with '_',
    # a whole check in one framework, a check id in every framework (expiring on the middle date),
    # one account from the fourth date, everything on two dates, one matching nothing
    add_exception(db, before, last, a1, "cis_v3.0.0", "1.11", "%:user/user-1%")
    add_exception(db, second, last, a2, None, None, "%user-_")
    add_exception(db, middle, last, None, "cis_v3.0.0", "1.11", None)
    add_exception(db, before, middle, None, None, "1.10", None)
    add_exception(db, fourth, last, a3, None, None, None)
    add_exception(db, before, last, None, None, None, "%no-such-resource%")
    seen = assert_same(db, "with exceptions")
    assert seen["muted"] and seen["worst"] and seen["failing"]
    add_exception(db, second, middle, None, None, None, None)
    assert assert_same(db, "with an everything exception")["muted"]
    db.execute("DELETE FROM aws_policy_exceptions WHERE all_scope")
    db.commit()

    # a database upgraded from the earlier design has no control_logic on some evaluations
    db.execute("UPDATE aws_policy_evaluations SET control_logic = NULL WHERE variant_id IN ("
               "SELECT variant_id FROM aws_policy_variants WHERE control_logic = 'console_users_mfa')")
    db.commit()
    assert assert_same(db, "without control_logic")["failing"]

    # several resources of one control with the same 'error' reason (written through the earlier
    # design's INSERT path): the report lists the control once per verdict
    framework, check_id, title, severity = db.execute(
        "SELECT framework, check_id, title, severity FROM aws_policy_scopes s JOIN aws_policy_variants v "
        "USING (variant_id) WHERE snapshot_date = %s AND control_logic = 'root_mfa' ORDER BY framework LIMIT 1",
        (last,)).fetchone()
    for resource in ("arn:aws:iam::x:user/a", "arn:aws:iam::x:user/b"):
        db.execute("INSERT INTO aws_policy_results (snapshot_date, framework, check_id, title, severity, account_id, "
                   "resource_id, resource_type, status, reason, run_id, control_logic) VALUES "
                   "(%s, %s, %s, %s, %s, %s, %s, 'iam_user', 'error', 'policy document unreadable', 'r', 'root_mfa')",
                   (last, framework, check_id, title, severity, a1, resource))
    db.commit()
    assert assert_same(db, "repeated error reasons")["errors"]
    controls = [e["controls"] for e in load_report_data(db, last).errors
                if e["reason"] == "policy document unreadable"]
    assert controls == [f"{framework} {check_id}, {framework} {check_id}"]
