"""Alerts stage: every shipped alert rule at A accounts x U users with C % daily churn after N days.

1. synthetic.sql stages day 1 and every check runs through database.run_check (the real path);
2. day 2 is staged as a copy of day 1 with C % of users flipping MFA and C % of access keys
   rotated; its checks are timed: "the day's checks time" of this run;
3. days 3..N come from a synthetic generator (the history stage's, with a per-verdict coin: the
   previous day's verdicts with C % flipped, written through aws_policy_store_evaluation);
4. on day N-1 (before day N exists) send_alerts' path runs once (alerts.run_alerts with a sender that accepts
   everything): the first day with alerts, 1 baseline per account; then day N, the steady day:
   each rule checked and read (alerts.check_rule + evaluate_rule, as the task does), and the
   whole run_alerts (rules, ledger insert, delivery with the same no-op sender) timed.
Results are seconds and ratios to the day's checks time, measured in the same run.
The database iam_bench_alerts is kept for inspection (bench/.state/pg).
"""

from __future__ import annotations

import os
import time
from datetime import date, timedelta

from common import fresh_database, log

ALERTS_DB = os.environ.get("IAM_BENCH_ALERTS_DB", "iam_bench_alerts")

# The history stage's generator (stage_history.SYNTHETIC_DAY) with the coin tossed in the select list:
# there, random() sits in an uncorrelated LATERAL subquery, which PostgreSQL may evaluate once for all
# rows (measured here: most days flipped nothing). Here each verdict flips with probability `share`.
SYNTHETIC_DAY = """
DROP TABLE IF EXISTS pg_temp._eval_pairs, pg_temp._eval_verdicts;
CREATE TEMP TABLE _eval_pairs ON COMMIT DROP AS
SELECT variant_id, account_id, control_logic, error_reason
FROM aws_policy_evaluations WHERE snapshot_date = %(prev)s;
CREATE TEMP TABLE _eval_verdicts ON COMMIT DROP AS
SELECT v.variant_id, v.account_id, v.resource_id, v.resource_type,
       CASE WHEN v.flip THEN CASE v.status WHEN 'pass' THEN 'fail' ELSE 'pass' END ELSE v.status END AS status,
       CASE WHEN v.flip THEN 'synthetic churn on ' || %(day)s || ': was ' || v.status ELSE v.reason END AS reason
FROM (SELECT i.*, random() < %(share)s AS flip
      FROM aws_policy_evaluations e
      JOIN aws_policy_verdicts i
        ON i.variant_id = e.variant_id AND i.account_id = e.account_id
       AND i.valid_from <= e.snapshot_date AND i.valid_to >= e.snapshot_date
      WHERE e.snapshot_date = %(prev)s AND e.error_reason IS NULL) v;
INSERT INTO aws_policy_scopes (snapshot_date, framework, check_id, variant_id, title, severity)
SELECT %(day)s, framework, check_id, variant_id, title, severity FROM aws_policy_scopes WHERE snapshot_date = %(prev)s
ON CONFLICT DO NOTHING;
SELECT aws_policy_store_evaluation(%(day)s, 'synthetic-' || %(day)s);
"""


def vacuum(conn) -> None:
    """VACUUM ANALYZE of this stage's database, on a connection of its own (not in a transaction)."""
    from common import postgres

    conn.commit()
    with postgres().connect(ALERTS_DB, autocommit=True) as own:
        own.execute("VACUUM ANALYZE")


def _checks(conn, day: date, logics, frameworks) -> float:
    from iam_audit.database import run_check

    t0 = time.perf_counter()
    for logic in logics:
        run_check(conn, logic, day, f"bench-{day}", frameworks)
    return time.perf_counter() - t0


def _run_alerts(conn, rules, day: date) -> tuple[float, object]:
    from iam_audit.alerting import alerts

    t0 = time.perf_counter()
    result = alerts.run_alerts(conn, rules, alerts.Routes(default=["webhook"]), day.isoformat(), f"bench-{day}",
                               "http://localhost:8080", send=lambda message: None, timeout="10min")
    return time.perf_counter() - t0, result


def run_alerts_bench(accounts: int, users: int, days: int, churn_pct: float) -> dict:
    from stage_checks import build_snapshot
    from stage_history import stage_copy

    from iam_audit.alerting import alerts
    from iam_audit.evaluate.catalogue import load_catalogue

    catalogue = load_catalogue()
    logics = [c.logic for c in catalogue.checks]
    frameworks = list(catalogue.frameworks)
    conn = fresh_database(ALERTS_DB)
    day1 = date.today() - timedelta(days=days - 1)
    log(f"alerts: staging {accounts} x {users} for {day1}")
    out: dict = {"accounts": accounts, "users": users, "days": days, "churn_pct": churn_pct,
                 "snapshot": build_snapshot(conn, accounts, users, day1.isoformat())}
    vacuum(conn)
    out["day1_checks_seconds"] = round(_checks(conn, day1, logics, frameworks), 2)
    day2 = day1 + timedelta(days=1)
    stage_copy(conn, day1, day2, churn_pct)
    vacuum(conn)
    checks = _checks(conn, day2, logics, frameworks)
    out["checks_seconds"] = round(checks, 2)
    log(f"alerts: day 2 checks {checks:.1f} s")
    rules, refused = alerts.load_rules(alerts.rule_dirs(None))
    assert not refused, refused
    newest = day1 + timedelta(days=days - 1)
    for n in range(3, days + 1):
        day = day1 + timedelta(days=n - 1)
        if day == newest:
            # the day before: the first run with alerts (a baseline per account, that day's changes)
            vacuum(conn)
            first_seconds, first = _run_alerts(conn, rules, day - timedelta(days=1))
            out["first_day"] = {"seconds": round(first_seconds, 2), "alerts": first.evaluated,
                                "ratio_to_checks": round(first_seconds / checks, 3)}
            log(f"alerts: first day with alerts {first_seconds:.1f} s {first.evaluated}")
        with conn.transaction():
            for statement in SYNTHETIC_DAY.strip().split(";\n"):
                if statement.strip():
                    conn.execute(statement, {"day": day, "prev": day - timedelta(days=1), "share": churn_pct / 100.0})
        conn.commit()
        if n % 10 == 0 or n == days:
            vacuum(conn)
            log(f"alerts: history day {n}/{days}")
    vacuum(conn)
    params = {"snapshot_date": newest, "run_id": f"bench-{newest}"}
    per_rule = {}
    for rule in rules:
        t0 = time.perf_counter()
        alerts.check_rule(conn, rule, params)
        rows = alerts.evaluate_rule(conn, rule, params, "10min")
        per_rule[rule.name] = {"seconds": round(time.perf_counter() - t0, 3), "rows": len(rows)}
    out["steady_day_rules"] = per_rule
    steady_seconds, steady = _run_alerts(conn, rules, newest)
    out["steady_day"] = {"seconds": round(steady_seconds, 2), "alerts": steady.evaluated,
                         "ledger_rows_added": steady.recorded,
                         "rules_seconds": round(sum(r["seconds"] for r in per_rule.values()), 2),
                         "ratio_to_checks": round(steady_seconds / checks, 3)}
    log(f"alerts: steady day {steady_seconds:.2f} s ({100 * steady_seconds / checks:.1f} % of the checks' "
        f"{checks:.1f} s) {per_rule}")
    conn.close()
    return out
