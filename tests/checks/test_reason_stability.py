"""A verdict's reason depends only on the data and the params, not on the snapshot date.

The history stores a verdict as an interval that a changed reason ends: a reason
that counted days ("created 37 days ago") started a new interval every day for
every such verdict. Every check is run on the same staging data under two
snapshot dates a day apart (extraction times a day apart, resource dates equal):
no threshold is crossed, so every verdict and its reason must be the same on both
days and the history must hold one interval per verdict. Then, per check that
compares a date with the extraction time, a resource one day from its threshold
must change status on the second day.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from iam_audit.database import run_check
from iam_audit.evaluate.catalogue import load_catalogue

from .staging import AS_OF, SNAPSHOT, Snapshot, days_ago
from .test_fail_closed import failing_snapshot, sql_read_by

LOGICS = [check.logic for check in load_catalogue().checks]
DAY_2 = SNAPSHOT + timedelta(days=1)
AS_OF_2 = AS_OF + timedelta(days=1)
C = "333333333333"


def day_verdicts(conn, snapshot_date) -> dict:
    rows = conn.execute(
        "SELECT control_logic, framework, check_id, account_id, resource_id, status, reason"
        " FROM aws_policy_results WHERE snapshot_date = %s", (snapshot_date,)).fetchall()
    return {row[:5]: row[5:] for row in rows}


def both_days(db, build, logics=LOGICS) -> tuple[dict, dict]:
    """The same data staged for SNAPSHOT and DAY_2 (extracted a day later), the checks run on both."""
    for snapshot_date, as_of in ((SNAPSHOT, AS_OF), (DAY_2, AS_OF_2)):
        build(Snapshot(db, snapshot_date, as_of))
        db.commit()
        for logic in logics:
            run_check(db, logic, snapshot_date)
    return day_verdicts(db, SNAPSHOT), day_verdicts(db, DAY_2)


def everything(s: Snapshot) -> None:
    failing_snapshot(s)
    s.account(C, missing={"credential_report": "AccessDenied", "authorization_details": "Throttling"})


def test_every_reason_is_the_same_on_the_next_day(db):
    day1, day2 = both_days(db, everything)
    assert {key[0] for key in day1} == set(LOGICS), "the fixture must give every check verdicts"
    for status in ("pass", "fail", "error"):
        assert any(v[0] == status for v in day1.values()), f"the fixture must give some '{status}'"
    for logic in CROSSINGS:  # the checks that compare dates: both verdicts' wordings are compared
        assert {v[0] for k, v in day1.items() if k[0] == logic} >= {"pass", "fail"}, logic
    assert day1.keys() == day2.keys()
    changed = [f"{key}:\n  {day1[key]}\n  {day2[key]}" for key in day1 if day1[key] != day2[key]]
    assert changed == [], "verdicts that changed although no data did:\n" + "\n".join(changed)
    # the history holds one interval per verdict, spanning both days
    late = db.execute("SELECT count(*) FROM aws_policy_verdicts WHERE valid_from <> %s", (SNAPSHOT,)).fetchone()
    assert late == (0,)


# A resource one day from its threshold, for each check that compares a date with the
# extraction time: (build, resource_id, status on SNAPSHOT, status on DAY_2).
A = "111111111111"
KEY = "AKIA0000000BOUNDARY1"


def _key_created(days: float):
    return lambda s: s.account(A).user(A, "ci", keys=({"last_rotated": days_ago(days)},)).access_key(
        A, "ci", KEY, created=days_ago(days))


CROSSINGS = {
    # 90 days exactly passes (v3.0.0 params); 91 fails
    "access_keys_rotated": (_key_created(90), KEY, "pass", "fail"),
    "hygiene_old_access_keys": (_key_created(365), KEY, "pass", "fail"),
    # v3.0.0: 45 days or more fails; 44.5 -> 45.5
    "credentials_unused": (lambda s: s.account(A).user(A, "ci", keys=(
        {"last_rotated": days_ago(400), "last_used": days_ago(44.5)},)),
        Snapshot.arn(A, "user", "ci"), "pass", "fail"),
    "hygiene_unused_roles": (lambda s: s.account(A).trusting_role(A, "batch", None, last_used=days_ago(90)),
                             Snapshot.arn(A, "role", "batch"), "pass", "fail"),
    # a use exactly 90 days before the extraction is recent; 91 days is not
    "root_account_usage": (lambda s: s.account(A).user(A, "<root_account>", is_root=True,
                                                       password_last_used=days_ago(90)), A, "fail", "pass"),
    "expired_server_certificates": (lambda s: s.account(A).server_certificate(A, "web", days_ago(-0.5)),
                                    Snapshot.arn(A, "server-certificate", "web"), "pass", "fail"),
}


def test_every_check_comparing_dates_with_the_extraction_time_has_a_crossing_case():
    dated = {logic for logic in LOGICS if re.search(r"\bas_of\b", sql_read_by(logic))}
    assert dated == set(CROSSINGS)


@pytest.mark.parametrize("logic", sorted(CROSSINGS))
def test_crossing_the_threshold_changes_the_status(db, logic):
    build, resource, before, after = CROSSINGS[logic]
    day1, day2 = both_days(db, build, [logic])
    first = {k[1]: v for k, v in day1.items() if k[4] == resource}
    second = {k[1]: v for k, v in day2.items() if k[4] == resource}
    framework = "cis_v3.0.0" if "cis_v3.0.0" in first else "iam_hygiene"
    assert (first[framework][0], second[framework][0]) == (before, after)
    if logic == "credentials_unused":  # 44.5 -> 45.5 days is inside v1.2.0's 90: same verdict, same words
        assert first["cis_v1.2.0"] == second["cis_v1.2.0"] and first["cis_v1.2.0"][0] == "pass"


def _aggregates(sql: str) -> list[str]:
    calls = []
    for match in re.finditer(r"\bstring_agg\s*\(", sql):
        end, depth = match.end(), 1
        while depth:
            depth += {"(": 1, ")": -1}.get(sql[end], 0)
            end += 1
        calls.append(sql[match.start():end])
    return calls


@pytest.mark.parametrize("logic", LOGICS)
def test_lists_in_reasons_have_an_explicit_order(logic):
    """A list in a reason whose order the planner picks could change with no change in the data."""
    unordered = [call for call in _aggregates(sql_read_by(logic)) if not re.search(r"\bORDER\s+BY\b", call, re.I)]
    assert unordered == []
