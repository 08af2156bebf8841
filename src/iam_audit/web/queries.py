"""What the Compliance page reads: its statements (sql/web/*.sql, through iam_audit.paths), their planner
settings, the read-only transaction through the compliance_reader connection, and the data it renders.

The page reads only the documented views (sql/views), in one read-only, repeatable-read transaction per
request: the organisation's totals over ALL accounts, one ranked page of accounts with their pass rate per
framework, the open failing findings (one row per problem: control logic, account, resource), the
headline of the latest run's date, the manual controls' evidence, the trend and the last alerts sent.
Values reach SQL only as bind parameters; the optional filters and orders are fixed fragments of this
module, chosen by validated parameters (iam_audit.web.params), never text from the request.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from iam_audit.paths import SQL_DIR
from iam_audit.vocabulary import (
    ALL,
    framework_numbers,
    framework_sort_key,
    pass_rate,
    severity_of_rank,
    severity_rank_sql,
)
from iam_audit.web import DAG_ID
from iam_audit.web.params import FilterError, parse_filters, parse_paging

log = logging.getLogger("iam_audit.web")  # one logger for the whole page

__all__ = ["FilterError", "load_compliance", "parse_filters", "parse_paging"]

READER_CONN_ID = "compliance_reader"
FALLBACK_CONN_ID = "postgres_default"
WEB_SQL_DIR = SQL_DIR / "web"
TREND_SNAPSHOTS = 30
FINDINGS_LIMIT = 50
STALE_NAMED = 10  # stale accounts named in the notice; the count covers all
VIEWS = ("aws_policy_scores", "aws_policy_open_findings", "aws_policy_open_problems", "aws_policy_accounts",
         "aws_policy_account_freshness", "aws_policy_controls", "aws_policy_runs", "aws_policy_framework_scores",
         "aws_policy_manual_evidence", "aws_policy_findings")
EVIDENCE_ROWS = 25  # facts shown per manual control (those needing attention first); the count covers all
ALERTS_SHOWN = 20


def _load_queries() -> dict[str, str]:
    """Every statement the page runs, by file name; the severity order is the vocabulary's."""
    queries = {path.stem: path.read_text() for path in sorted(WEB_SQL_DIR.glob("*.sql"))}
    queries["findings"] = queries["findings"].replace("{severity_rank}", severity_rank_sql("severity"))
    return queries


QUERIES = _load_queries()

# How the accounts are ranked (sort=...): NULL (no pass and no fail: never evaluated, or only errors)
# is unknown and ranks as the worst rate. The rate and fails are the chosen framework's, else the
# account's lowest pass rate and most fails in any one framework.
ACCOUNT_SORTS = {
    "pass_rate": "w.rate ASC NULLS FIRST, w.fails DESC NULLS FIRST, f.account_id",
    "fail": "w.fails DESC NULLS LAST, w.rate ASC NULLS FIRST, f.account_id",
    "stale": "f.is_stale DESC, f.latest_snapshot_date ASC NULLS FIRST, w.rate ASC NULLS FIRST, f.account_id",
    "account": "f.account_id",
}
ACCOUNT_FILTERS = {
    "account": ("", "AND f.account_id = %(account)s"),
    "framework": ("AND framework = %(framework)s", ""),
}
# Planner settings of the findings statement, for its transaction only. It groups every open
# problem (117,000 at 300 accounts x 100 users after 90 days) while the planner, misjudging the
# view's row count by three orders of magnitude, sorts them for the grouping (on disk at the default
# work_mem): hashing them costs about a third less (docs/performance.md, "Page findings").
FINDINGS_SETTINGS = {"work_mem": "64MB", "enable_sort": "off"}
# The per-account sums hash in memory (tens of thousands of groups at thousands of accounts) instead
# of sorting every accounts x controls row on disk.
ACCOUNTS_SETTINGS = {"work_mem": "32MB"}
HEADLINE_FILTERS = {"account": "AND account_id = %(account)s", "severity": "AND severity = %(severity)s"}
FINDING_FILTERS = {
    "account": ("AND account_id = %(account)s", ""),
    "severity": ("AND severity = %(severity)s", ""),
    # keep every framework number of a problem that violates the chosen framework
    "framework": ("", "HAVING bool_or(%(framework)s = ANY(frameworks))"),
}


rate = pass_rate  # pass / (pass + fail) in percent, as aws_policy_scores defines it


def run_url(run_id: str | None) -> str | None:
    """The Airflow 3 UI page of a run of the DAG, relative to the UI's base URL."""
    if not run_id:
        return None
    return f"dags/{DAG_ID}/runs/{quote(run_id, safe='')}"


ALLOW_WRITER_ENV = "IAM_AUDIT_PAGE_ALLOW_READ_WRITE_LOGIN"


class PageConfigurationError(RuntimeError):
    """The page refuses to read: its login could write (the message is for the API server's log)."""


def writer_allowed() -> bool:
    """The API server's opt-in to a page reading through a login that can write (not recommended)."""
    return os.environ.get(ALLOW_WRITER_ENV, "").strip().lower() in ("1", "true", "yes")


def reader_hook() -> tuple[Any, str | None]:
    """The hook the page reads with, and a warning when it is the pipeline's own connection.

    Without the compliance_reader connection the page refuses to serve (a DAG viewer must not read
    through the pipeline's read-write login), unless IAM_AUDIT_PAGE_ALLOW_READ_WRITE_LOGIN is true."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=READER_CONN_ID)
    try:
        hook.get_connection(READER_CONN_ID)
    except AirflowNotFoundException:
        if not writer_allowed():
            raise PageConfigurationError(
                f"the connection {READER_CONN_ID} is not defined: define it with a login role granted the database "
                f"role compliance_reader (or set {ALLOW_WRITER_ENV}=true on the API server to read through "
                f"{FALLBACK_CONN_ID}, the pipeline's read-write connection)") from None
        warning = (f"The connection {READER_CONN_ID} is not defined: the page reads through {FALLBACK_CONN_ID}, "
                   f"the pipeline's read-write connection (still in read-only transactions), because "
                   f"{ALLOW_WRITER_ENV} is set. Define {READER_CONN_ID} with a login role granted the database "
                   "role compliance_reader.")
        log.warning(warning)
        return PostgresHook(postgres_conn_id=FALLBACK_CONN_ID), warning
    return hook, None


@contextmanager
def read_only_cursor(hook: Any) -> Iterator[Any]:
    """A cursor in a read-only, repeatable-read transaction (one consistent view), rolled back after."""
    conn = hook.get_conn()
    try:
        conn.autocommit = False
        cur = conn.cursor()
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # no statement outlives the request's deadline
        cur.execute(f"SET LOCAL statement_timeout = '{int(page_deadline_seconds() * 1000)}ms'")
        yield cur
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()


@contextmanager
def planner_settings(cur: Any, settings: dict[str, str]) -> Iterator[None]:
    """SET LOCAL the settings (constants of this module) for the statements inside, then their defaults."""
    for name, value in settings.items():
        cur.execute(f"SET LOCAL {name} = '{value}'")
    yield
    for name in settings:
        cur.execute(f"SET LOCAL {name} TO DEFAULT")


def _records(cur: Any, name: str, sql: str | None = None, **params: Any) -> list[tuple]:
    cur.execute(sql or QUERIES[name], params)
    return cur.fetchall()


def load_compliance(hook: Any = None, params: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain data. ``available`` is False before the first run.

    Raises FilterError for a bad filter or paging parameter."""
    warning = None
    if hook is None:
        hook, warning = reader_hook()
    params = params or {}
    data: dict[str, Any] = {"available": False, "warning": warning, "missing_views": [], "filters": {},
                            "paging": {}, "catalogue_frameworks": [], "totals": {}, "accounts": [],
                            "accounts_matching": 0, "frameworks": [], "scores": [],
                            "findings": [], "findings_total": 0, "trend": [], "manual_evidence": [],
                            "headline": None}
    with read_only_cursor(hook) as cur:
        can_write, login = _records(cur, "can_write")[0]
        if can_write and not writer_allowed():
            raise PageConfigurationError(
                f"the page's login {login} may write to the compliance database: give the connection a login "
                f"granted only compliance_reader (or set {ALLOW_WRITER_ENV}=true on the API server)")
        present = dict(_records(cur, "relations", names=list(VIEWS)))
        data["missing_views"] = [v for v in VIEWS if not present.get(v)]
        if data["missing_views"]:
            return data
        catalogue = sorted((f for (f,) in _records(cur, "frameworks")), key=framework_sort_key)
        data["catalogue_frameworks"] = catalogue
        data["filters"] = filters = parse_filters(params, catalogue)
        data["paging"] = paging = parse_paging(params)
        totals, accounts, scores, matching = _accounts(cur, filters, paging)
        if not totals["accounts"]:
            return _plain(data)
        findings, total = _findings(cur, filters)
        data["headline"] = _headline(cur, filters, totals["latest_run_date"])
        info = {a: (n, st) for a, n, st in _records(cur, "account_info",
                                                    accounts=sorted({f["account_id"] for f in findings}))}
        pairs = sorted({(a["account_id"], a["latest_snapshot_date"]) for a in accounts
                        if a["latest_snapshot_date"] is not None}
                       | {(f["account_id"], _iso(f["snapshot_date"])) for f in findings})
        run_ids = {(a, _iso(d)): r for a, d, r in _records(cur, "run_ids", accounts=[a for a, _ in pairs],
                                                     dates=[d for _, d in pairs])}
        dates = [d for (d,) in _records(cur, "trend_dates", snapshots=TREND_SNAPSHOTS)]
        evidence = _manual_evidence(cur, filters)
        trend = [{"snapshot_date": snapshot, "framework": framework, "pass": int(p), "fail": int(f),
                  "error": int(e), "muted": int(m), "accounts": n, "pass_rate": rate(int(p), int(f))}
                 for snapshot, framework, p, f, e, m, n in _records(cur, "trend", dates=dates)]
        alerts_sent = []
        if dict(_records(cur, "relations", names=["aws_policy_alerts_sent"])).get("aws_policy_alerts_sent"):
            columns = ("sent_at", "rule", "channel", "recipient", "account_id", "severity", "title", "resource_id")
            alerts_sent = [dict(zip(columns, row, strict=True))
                           for row in _records(cur, "alerts_sent", limit=ALERTS_SHOWN)]
    for a in accounts:
        a["run_id"] = run_ids.get((a["account_id"], _iso(a["latest_snapshot_date"])))
        a["run_url"] = run_url(a["run_id"])
    for f in findings:
        name, stale = info.get(f["account_id"], ("", False))
        f["account_name"] = name or ""
        f["account_stale"] = bool(stale)
        f["run_id"] = run_ids.get((f["account_id"], _iso(f["snapshot_date"])))
        f["run_url"] = run_url(f["run_id"])
    paging["pages"] = max(1, -(-matching // paging["page_size"]))
    data.update(totals=totals, accounts=accounts, accounts_matching=matching, scores=scores, findings=findings,
                findings_total=total, trend=trend, alerts_sent=alerts_sent, manual_evidence=evidence,
                frameworks=[t["framework"] for t in totals["frameworks"]], available=bool(totals["frameworks"]))
    return _plain(data)


def _manual_evidence(cur: Any, filters: dict[str, str]) -> list[dict[str, Any]]:
    """Per manual control with evidence (framework order, then control number): its facts."""
    where = "AND e.framework = %(framework)s" if "framework" in filters else ""
    sql = QUERIES["manual_evidence"].format(filters=where)
    cur.execute(sql, {"limit": EVIDENCE_ROWS, **filters})
    controls: dict[tuple[str, str], dict[str, Any]] = {}
    for (snapshot, framework, check_id, title, evidence, account_id, account_name, subject, detail, attention,
         total, flagged) in cur.fetchall():
        control = controls.setdefault((framework, check_id), {
            "framework": framework, "check_id": check_id, "title": title, "snapshot_date": snapshot,
            "total": int(total), "flagged": int(flagged), "facts": []})
        control["facts"].append({"evidence": evidence, "account_id": account_id, "account_name": account_name,
                                 "subject": subject, "detail": detail, "attention": bool(attention)})
    number = lambda c: tuple(int(p) if p.isdigit() else 0 for p in c["check_id"].split("."))  # noqa: E731
    return sorted(controls.values(), key=lambda c: (framework_sort_key(c["framework"]), number(c)))


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _accounts(cur: Any, filters: dict[str, str], paging: dict[str, Any]
              ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], int]:
    """Totals over all accounts, then one ranked page of accounts with their scores, in one statement."""
    sql = QUERIES["accounts"].format(
        framework_filter=ACCOUNT_FILTERS["framework"][0] if "framework" in filters else "",
        accounts_filter=ACCOUNT_FILTERS["account"][1] if "account" in filters else "",
        order=ACCOUNT_SORTS[paging["sort"]])
    size = paging["page_size"]
    dates = [d for (d,) in _records(cur, "latest_dates")]
    with planner_settings(cur, ACCOUNTS_SETTINGS):
        (count, stale, never, run_date, matching, stale_named, framework_totals, page, page_scores), = _records(
            cur, "accounts", sql, limit=size, offset=(paging["page"] - 1) * size, stale_named=STALE_NAMED,
            dates=dates, **{k: v for k, v in filters.items() if k in ACCOUNT_FILTERS})
    totals = {
        "accounts": count, "stale": stale, "never_evaluated": never, "latest_run_date": run_date,
        "stale_named": [{"account_id": a, "account_name": n, "latest_snapshot_date": d}
                        for a, n, d in stale_named or []],
        "frameworks": sorted(({"framework": f, "pass": int(p), "fail": int(x), "error": int(e), "muted": int(m),
                               "accounts": n, "pass_rate": rate(int(p), int(x))}
                              for f, p, x, e, m, n in framework_totals or []),
                             key=lambda t: framework_sort_key(t["framework"])),
    }
    accounts = [dict(zip(("account_id", "account_name", "latest_snapshot_date", "latest_run_date", "extracted_at",
                          "snapshot_age_days", "is_stale"), row, strict=True)) for row in page or []]
    scores = [{"account_id": a, "framework": f, "snapshot_date": d, "pass": int(p), "fail": int(x),
               "error": int(e), "muted": int(m), "pass_rate": rate(int(p), int(x))}
              for a, f, d, p, x, e, m in page_scores or []]
    return totals, accounts, scores, matching


def _headline(cur: Any, filters: dict[str, str], day: Any) -> dict[str, Any]:
    """Open findings and the pass rate of findings on the latest run's date, under the page's filters."""
    sql = QUERIES["headline"].format(filters=" ".join(HEADLINE_FILTERS[k] for k in HEADLINE_FILTERS if k in filters))
    (passing, failing, errors, muted), = _records(
        cur, "headline", sql, day=day, scope=filters.get("framework", ALL),
        **{k: v for k, v in filters.items() if k in HEADLINE_FILTERS})
    return {"snapshot_date": day, "scope": filters.get("framework", ALL), "pass": int(passing),
            "fail": int(failing), "error": int(errors), "muted": int(muted), "pass_rate": rate(passing, failing)}


def _findings(cur: Any, filters: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    where = " ".join(FINDING_FILTERS[k][0] for k in FINDING_FILTERS if k in filters)
    having = " ".join(FINDING_FILTERS[k][1] for k in FINDING_FILTERS if k in filters)
    sql = QUERIES["findings"].format(filters=where, having=having)
    with planner_settings(cur, FINDINGS_SETTINGS):
        rows = _records(cur, "findings", sql, limit=FINDINGS_LIMIT, **filters)
    findings = []
    for (problem, account_id, resource_id, severity_rank, first_failing, age_days, snapshot, frameworks, check_ids,
         titles, reasons, resource_type, _total) in rows:
        violated = sorted(zip(frameworks, check_ids, titles, reasons, strict=True),
                          key=lambda v: framework_sort_key(v[0]))
        # the newest CIS version's wording, else the newest of any framework
        newest = max(violated, key=lambda v: (v[0].startswith("cis_"), framework_sort_key(v[0])))
        findings.append({
            "problem": problem, "account_id": account_id, "resource_id": resource_id,
            "resource_type": resource_type,
            "severity": severity_of_rank(severity_rank),
            "first_failing_date": first_failing, "age_days": age_days, "snapshot_date": snapshot,
            "title": newest[2], "reason": newest[3],
            "controls": [{"framework": f, "check_id": c} for f, c, _, _ in violated],
            "numbers": framework_numbers([(f, c) for f, c, _, _ in violated]),
        })
    return findings, (rows[0][-1] if rows else 0)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.isoformat() if isinstance(value, date | datetime) else value


def page_deadline_seconds() -> float:
    """A request of the page answers within this time (waiting included), else 503 'busy'."""
    return max(1.0, float(os.environ.get("IAM_AUDIT_PAGE_DEADLINE_SECONDS", "30")))

