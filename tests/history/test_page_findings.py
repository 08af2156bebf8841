"""The Compliance page ranks its findings on aws_policy_open_problems (open findings per interval
and severity, before the framework spread): on a multi-day history with churn, exceptions of every
scope shape and a database upgraded from the earlier design (no control_logic), it returns exactly
what the earlier statement over aws_policy_open_findings returned: same rows, order, totals, muting."""

from __future__ import annotations

from datetime import timedelta

from iam_audit.web import queries

from .history import ACCOUNTS, run_new
from .test_equivalence import DAYS, stage_history

# The page's findings statement as it was before aws_policy_open_problems: the reference.
EARLIER_FINDINGS = """
    WITH ranked AS (
        SELECT coalesce(control_logic, framework || ' ' || check_id) AS problem, account_id, resource_id,
               min(CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2
                                 WHEN 'low' THEN 3 ELSE 4 END) AS severity_rank,
               min(first_failing_date) AS first_failing_date, max(age_days) AS age_days,
               max(snapshot_date) AS snapshot_date, count(*) OVER () AS total
        FROM aws_policy_open_findings
        WHERE true {filters}
        GROUP BY 1, 2, 3
        {having}
        ORDER BY severity_rank, age_days DESC, first_failing_date, account_id, problem, resource_id
        LIMIT %(limit)s
    )
    SELECT r.problem, r.account_id, r.resource_id, r.severity_rank, r.first_failing_date, r.age_days,
           r.snapshot_date, v.frameworks, v.check_ids, v.titles, v.reasons, v.resource_type, r.total
    FROM ranked r
    CROSS JOIN LATERAL (
        SELECT array_agg(framework ORDER BY framework) AS frameworks,
               array_agg(check_id ORDER BY framework) AS check_ids,
               array_agg(title ORDER BY framework) AS titles,
               array_agg(reason ORDER BY framework) AS reasons,
               min(resource_type) AS resource_type
        FROM aws_policy_open_findings
        WHERE account_id = r.account_id AND resource_id = r.resource_id
          AND coalesce(control_logic, framework || ' ' || check_id) = r.problem {filters}
    ) v
    ORDER BY r.severity_rank, r.age_days DESC, r.first_failing_date, r.account_id, r.problem, r.resource_id
"""
EARLIER_FILTERS = {
    "account": ("AND account_id = %(account)s", ""),
    "severity": ("AND severity = %(severity)s", ""),
    "framework": ("", "HAVING bool_or(framework = %(framework)s)"),
}


def statement(template: str, fragments: dict, filters: dict) -> str:
    where = " ".join(fragments[k][0] for k in fragments if k in filters)
    having = " ".join(fragments[k][1] for k in fragments if k in filters)
    return template.format(filters=where, having=having)


def findings(db, filters: dict, limit: int) -> tuple[list, list]:
    """(the page's statement's rows, the earlier statement's rows) for one filter set."""
    with queries.planner_settings(db, queries.FINDINGS_SETTINGS):  # with the page's planner settings
        new = db.execute(statement(queries.QUERIES["findings"], queries.FINDING_FILTERS, filters),
                         {"limit": limit, **filters}).fetchall()
    old = db.execute(statement(EARLIER_FINDINGS, EARLIER_FILTERS, filters), {"limit": limit, **filters}).fetchall()
    return new, old


def add_exception(db, created: str, expires, account=None, framework=None, check_id=None, pattern=None) -> None:
    db.execute("INSERT INTO aws_policy_exceptions (account_id, framework, check_id, resource_pattern, reason, "
               "expires_on) VALUES (%s, %s, %s, %s, 'accepted', current_date + 300)",
               (account, framework, check_id, pattern))
    # backdated (the guard sets created_at to now() and caps expires_on from it): the trigger is off meanwhile
    db.execute("ALTER TABLE aws_policy_exceptions DISABLE TRIGGER USER")
    db.execute("UPDATE aws_policy_exceptions SET created_at = %s::date, expires_on = %s "
               "WHERE id = (SELECT max(id) FROM aws_policy_exceptions)", (created, expires))
    db.execute("ALTER TABLE aws_policy_exceptions ENABLE TRIGGER USER")
    db.commit()


def delete_exceptions(db) -> None:
    db.execute("ALTER TABLE aws_policy_exceptions DISABLE TRIGGER USER")
    db.execute("DELETE FROM aws_policy_exceptions")
    db.execute("ALTER TABLE aws_policy_exceptions ENABLE TRIGGER USER")
    db.commit()


def open_finding_rows(db) -> list[tuple]:
    """aws_policy_open_findings in the columns both views have, and the view expanded over its frameworks."""
    spread = db.execute(
        "SELECT problem, account_id, resource_id, resource_type, snapshot_date, severity, framework, "
        "first_failing_date, age_days FROM aws_policy_open_problems, unnest(frameworks) AS framework").fetchall()
    rows = db.execute(
        "SELECT coalesce(control_logic, framework || ' ' || check_id), account_id, resource_id, resource_type, "
        "snapshot_date, severity, framework, first_failing_date, age_days FROM aws_policy_open_findings").fetchall()
    return sorted(spread, key=str), sorted(rows, key=str)


FILTER_SETS = [
    {}, {"account": ACCOUNTS[0]}, {"severity": "high"}, {"severity": "low"}, {"framework": "cis_v1.2.0"},
    {"framework": "cis_v3.0.0", "severity": "medium"}, {"framework": "iam_hygiene"},
    {"account": ACCOUNTS[1], "framework": "cis_v5.0.0", "severity": "high"},
]


def assert_page_findings_unchanged(db, context: str) -> int:
    shown = 0
    for filters in FILTER_SETS:
        for limit in (1000, queries.FINDINGS_LIMIT, 7):
            new, old = findings(db, filters, limit)
            assert new == old, f"{context}, filters {filters}, limit {limit}: {len(new)} rows vs {len(old)}"
            shown += len(new)
    spread, rows = open_finding_rows(db)
    assert rows, context
    assert spread == rows, f"{context}: aws_policy_open_problems spread differs from aws_policy_open_findings"
    return shown


def test_page_findings_equal_the_earlier_statement(db):
    stage_history(db)
    for day in DAYS:
        run_new(db, day, f"run-{day}")
    # one framework rates a control differently (severities are per framework row): the severity
    # filter and the ranking then depend on which frameworks of a problem remain
    db.execute("UPDATE aws_policy_scopes SET severity = 'low' WHERE framework = 'cis_v1.2.0' AND severity = 'high'")
    db.commit()
    assert assert_page_findings_unchanged(db, "no exceptions") > 0
    total_before = findings(db, {}, 1)[0][0][-1]

    a1, a2, _ = ACCOUNTS
    last, middle = DAYS[-1], DAYS[2]
    # every scope shape: an account and a resource pattern; one framework only; one check of every
    # framework; one framework's check in one account; expired before the latest date; created after
    # it; a pattern with '_' that matches one resource; one matching nothing
    shapes = [
        dict(created="2026-01-01", expires=last, account=a1, pattern="%:user/user-7"),
        dict(created="2026-01-01", expires=last, framework="cis_v1.2.0"),
        dict(created="2026-01-01", expires=last, check_id="1.10"),
        dict(created="2026-01-01", expires=last, account=a2, framework="cis_v3.0.0", check_id="1.12"),
        dict(created="2026-01-01", expires=middle, account=a2),
        dict(created=last.isoformat(), expires=last, account=a2, pattern="%user-1_"),
        dict(created=(last + timedelta(days=1)).isoformat(), expires=last, account=a1),
        dict(created="2026-01-01", expires=last, pattern="%no-such-resource%"),
        dict(created="2026-01-01", expires=last, account=a1),
        dict(created="2026-01-01", expires=last, framework="iam_hygiene", pattern="%user-2%"),
        dict(created="2026-01-01", expires=last, account=a1, pattern="%user%"),
    ]
    # one account's exceptions, without and with a pattern, mute some of its failing findings
    must_mute = (shapes[8], shapes[10])
    # each shape alone (together, a broad one can hide a narrow one's path)
    for shape in shapes:
        delete_exceptions(db)
        add_exception(db, **shape)
        muted = db.execute("SELECT count(*) FROM aws_policy_muted_verdicts WHERE is_current").fetchone()[0]
        assert muted > 0 or shape not in must_mute, shape
        for filters in ({}, {"severity": "high"}, {"framework": "cis_v3.0.0"}, {"account": a2}):
            new, old = findings(db, filters, 1000)
            assert new == old, f"exception {shape}, filters {filters}: {len(new)} rows vs {len(old)}"
        spread, rows = open_finding_rows(db)
        assert spread == rows, f"exception {shape}: aws_policy_open_problems spread differs"
    delete_exceptions(db)
    for shape in shapes:
        add_exception(db, **shape)
    muted = db.execute("SELECT count(*) FROM aws_policy_muted_verdicts WHERE is_current").fetchone()[0]
    assert muted > 0
    # some open problems keep a framework row beside a muted one (the exact path), others have none muted
    muted_now = set(db.execute("SELECT account_id, resource_id FROM aws_policy_muted_verdicts WHERE is_current"))
    still_open = set(db.execute("SELECT account_id, resource_id FROM aws_policy_open_findings"))
    assert still_open & muted_now and still_open - muted_now
    assert assert_page_findings_unchanged(db, "with exceptions") > 0
    assert findings(db, {}, 1)[0][0][-1] < total_before  # a whole problem muted in every framework is gone

    # a database upgraded from the earlier design has no control_logic: the problem is per framework
    db.execute("UPDATE aws_policy_evaluations SET control_logic = NULL WHERE variant_id IN ("
               "SELECT variant_id FROM aws_policy_variants WHERE control_logic = 'console_users_mfa')")
    db.commit()
    problems = {r[0] for r in findings(db, {}, 1000)[0]}
    assert any(p.startswith("cis_v") and " " in p for p in problems), problems
    assert assert_page_findings_unchanged(db, "without control_logic") > 0
