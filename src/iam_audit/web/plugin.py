"""The "Compliance" page of the Airflow UI: CIS verdicts from the BI views, inside Airflow.

A FastAPI app mounted by the API server under /compliance (``fastapi_apps``) renders
one server-side HTML page; an ``external_views`` entry puts it in the UI's navigation,
where the UI shows it in a frame at /plugin/compliance. Only users who may read the DAG
``aws_iam_cis`` see it; when Airflow's authorization cannot be imported the page refuses
to serve (503) rather than serve without it.

The page reads the compliance database through the connection ``compliance_reader``
(a login role granted the ``compliance_reader`` database role; ``postgres_default`` only
as a fallback, with a warning on the page and in the log), in one read-only transaction
per request, and only from the documented views (sql/views): it shows

- the organisation's totals over ALL accounts, computed in SQL: how many accounts, how many
  stale and never evaluated, and per framework the pass / fail / error / muted counts and
  pass rate of every account's newest evaluated snapshot,
- one page of accounts (worst first): each account's snapshot age, with accounts whose newest
  evaluated snapshot is older than the newest run marked stale (aws_policy_account_freshness),
  and the pass rate per framework of that snapshot: pass / (pass + fail), with error and
  muted counts beside it (aws_policy_scores),
- the open failing findings, worst severity first, then oldest, one row per problem (control
  logic, account, resource) with the framework numbers it violates, filterable by framework,
  account and severity (ranked on aws_policy_open_problems, texts from aws_policy_open_findings),
- the trend of the pass rate per framework over the last snapshots.

Query parameters (the page and ``GET /compliance/api/summary``, which returns the same data as
JSON; anything else, or a bad value, is a 400 naming the parameter):

- ``framework`` (a catalogue framework), ``account`` (12 digits), ``severity``: filter the
  findings; ``account`` also shows only that account, ``framework`` ranks the accounts by
  that framework's pass rate and fails;
- ``page`` (1 to 1,000,000, default 1) and ``page_size`` (1 to 500, default 50): which
  accounts are shown; a page past the last one is empty (``paging.pages`` says how many);
- ``sort``: ``pass_rate`` (default: lowest pass rate first, then most fails), ``fail``
  (most fails first), ``stale`` (stale first, oldest snapshot first), ``account`` (by id).
  The rate and fails of an account are those of the chosen framework, else its lowest
  rate and most fails in any one framework; no pass and no fail (never evaluated, or only
  errors) is unknown and ranks first.

The JSON's ``totals`` cover every account whatever the page and filters; ``accounts`` and
``scores`` hold the page's accounts, ``accounts_matching`` how many match the filters.
"""

import html
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow.plugins_manager import AirflowPlugin

from iam_audit.reporting.headline import ALL, DEFINITION, PASS_RATE

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

DAG_ID = "aws_iam_cis"
READER_CONN_ID = "compliance_reader"
FALLBACK_CONN_ID = "postgres_default"
URL_PREFIX = "/compliance"
STATIC_DIR = Path(__file__).resolve().parent / "static"
TREND_SNAPSHOTS = 30
FINDINGS_LIMIT = 50
# the accounts table: one page of accounts (query parameters page, page_size, sort)
PAGING_DEFAULTS = {"page": 1, "page_size": 50, "sort": "pass_rate"}
MAX_PAGE_SIZE = 500
MAX_PAGE = 1_000_000
STALE_NAMED = 10  # stale accounts named in the notice; the count covers all
SEVERITIES = ("critical", "high", "medium", "low")
ACCOUNT_ID = re.compile(r"\d{12}")
VIEWS = ("aws_policy_scores", "aws_policy_open_findings", "aws_policy_open_problems", "aws_policy_accounts",
         "aws_policy_account_freshness", "aws_policy_controls", "aws_policy_runs", "aws_policy_framework_scores",
         "aws_policy_manual_evidence", "aws_policy_findings")
EVIDENCE_ROWS = 25  # facts shown per manual control (those needing attention first); the count covers all

# Every statement the page runs: values only as bind parameters. The findings statement gets
# its optional filters as fixed fragments (FINDING_FILTERS), never as text from the request.
ALERTS_SHOWN = 20

QUERIES = {
    "relations": "SELECT name, to_regclass(name) IS NOT NULL FROM unnest(%(names)s::text[]) AS name",
    # the last alerts the send_alerts task delivered (absent before the alert ledger exists)
    "alerts_sent": "SELECT sent_at, rule, channel, recipient, account_id, severity, title, resource_id "
                   "FROM aws_policy_alerts_sent ORDER BY sent_at DESC LIMIT %(limit)s",
    # may the page's login change anything? a superuser, or a role with a write privilege on a table of
    # the compliance schema or iam_stage (the page is read-only; its login should be compliance_reader's)
    "can_write": """
        SELECT r.rolsuper OR EXISTS (
            SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname IN (current_schema(), 'iam_stage') AND c.relkind IN ('r', 'p')
              AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')), current_user
        FROM pg_roles r WHERE r.rolname = current_user
    """,
    "frameworks": "SELECT DISTINCT framework FROM aws_policy_controls",
    # the organisation facts of the newest date next to each manual control that has evidence; never verdicts
    "manual_evidence": """
        WITH latest AS (SELECT max(snapshot_date) AS d FROM aws_policy_manual_evidence),
        facts AS (
            SELECT e.*, row_number() OVER w AS n, count(*) OVER p AS total,
                   count(*) FILTER (WHERE e.attention) OVER p AS flagged
            FROM aws_policy_manual_evidence e JOIN latest ON e.snapshot_date = latest.d
            WHERE true {filters}
            WINDOW p AS (PARTITION BY e.framework, e.check_id),
                   w AS (PARTITION BY e.framework, e.check_id
                         ORDER BY e.attention DESC, e.evidence, e.account_id NULLS FIRST, e.subject)
        )
        SELECT snapshot_date, framework, check_id, title, evidence, account_id, account_name, subject, detail,
               attention, total, flagged
        FROM facts WHERE n <= %(limit)s
    """,
    # names and freshness of the accounts of the shown findings
    "account_info": """
        SELECT account_id, account_name, is_stale FROM aws_policy_account_freshness
        WHERE account_id = ANY(%(accounts)s::text[])
    """,
    # the run that wrote an account's verdicts of a date, for links to the run in the UI
    "run_ids": """
        SELECT k.account_id, k.snapshot_date,
               (SELECT r.run_id FROM aws_policy_runs r
                WHERE r.account_id = k.account_id AND r.snapshot_date = k.snapshot_date
                ORDER BY r.evaluated_at DESC LIMIT 1)
        FROM unnest(%(accounts)s::text[], %(dates)s::date[]) AS k (account_id, snapshot_date)
    """,
    # one row per problem: control logic x account x resource, over every framework it violates; the
    # problems are ranked on aws_policy_open_problems (the open findings per interval and severity, before
    # they are spread over the frameworks) and only the shown ones collect their frameworks' texts
    "findings": """
        WITH ranked AS (
            SELECT problem, account_id, resource_id,
                   min(CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2
                                     WHEN 'low' THEN 3 ELSE 4 END) AS severity_rank,
                   min(first_failing_date) AS first_failing_date, max(age_days) AS age_days,
                   max(snapshot_date) AS snapshot_date, count(*) OVER () AS total
            FROM aws_policy_open_problems
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
    """,
    # the headline of the latest run's date (sql/views/080_aws_policy_findings.sql), in the chosen framework
    # (scope) and for the chosen account and severity (HEADLINE_FILTERS)
    "headline": """
        SELECT count(*) FILTER (WHERE status = 'pass'), count(*) FILTER (WHERE status = 'fail'),
               count(*) FILTER (WHERE status = 'error'), count(*) FILTER (WHERE status = 'muted')
        FROM aws_policy_findings
        WHERE snapshot_date = %(day)s AND scope = %(scope)s {filters}
    """,
    # the accounts' newest evaluated dates (usually one or two), for the accounts statement
    "latest_dates": """
        SELECT DISTINCT latest_snapshot_date FROM aws_policy_account_freshness WHERE latest_snapshot_date IS NOT NULL
    """,
    "trend_dates": """
        SELECT DISTINCT snapshot_date FROM aws_policy_accounts ORDER BY snapshot_date DESC LIMIT %(snapshots)s
    """,
    # the org-wide sums per date and framework, summed per variant before they are spread over the
    # frameworks (aws_policy_scores would spread every evaluation first); accounts: every control of a
    # run evaluates the same accounts
    "trend": """
        SELECT snapshot_date, framework, pass_count, fail_count, error_count, muted_count, accounts
        FROM aws_policy_framework_scores
        WHERE snapshot_date = ANY(%(dates)s::date[])
        ORDER BY snapshot_date, framework
    """,
    # One statement for the accounts: the org-wide totals over ALL accounts (each account's newest
    # evaluated snapshot, as "scores"), the account counts, and one ranked page of accounts. The
    # per-account x framework sums are computed once and shared (MATERIALIZED); {accounts_filter}
    # and {order} are fixed fragments (ACCOUNT_FILTERS, ACCOUNT_SORTS), never text from the request.
    "accounts": """
        WITH fresh AS MATERIALIZED (
            SELECT account_id, account_name, latest_snapshot_date, latest_run_date, extracted_at,
                   snapshot_age_days, is_stale
            FROM aws_policy_account_freshness
        ),
        -- grouped per date before the join with each account's newest date: the estimates stay right (the
        -- dates are a parameter) and the grouping hashes; in the C collation (a byte-wise compare) the
        -- accounts x controls rows group many times faster than in the database's language collation
        per AS MATERIALIZED (
            SELECT s.account_id, s.framework, s.pass, s.fail, s.error, s.muted
            FROM (
                SELECT account_id COLLATE "C" AS account_id, snapshot_date, framework COLLATE "C" AS framework,
                       sum(pass_count) AS pass, sum(fail_count) AS fail,
                       sum(error_count) AS error, sum(muted_count) AS muted
                FROM aws_policy_scores
                WHERE snapshot_date = ANY(%(dates)s::date[])
                GROUP BY 1, 2, 3
            ) s
            JOIN fresh f ON f.account_id = s.account_id AND f.latest_snapshot_date = s.snapshot_date
        ),
        worst AS (
            SELECT account_id, min(pass / nullif(pass + fail, 0)) AS rate, max(fail) AS fails
            FROM per WHERE true {framework_filter}
            GROUP BY account_id
        ),
        ranked AS (
            SELECT f.*, row_number() OVER (ORDER BY {order}) AS n
            FROM fresh f LEFT JOIN worst w ON w.account_id = f.account_id
            WHERE true {accounts_filter}
            ORDER BY n
            LIMIT %(limit)s OFFSET %(offset)s
        )
        SELECT (SELECT count(*) FROM fresh),
               (SELECT count(*) FROM fresh WHERE is_stale),
               (SELECT count(*) FROM fresh WHERE latest_snapshot_date IS NULL),
               (SELECT max(latest_run_date) FROM fresh),
               (SELECT count(*) FROM fresh f WHERE true {accounts_filter}),
               (SELECT json_agg(json_build_array(account_id, account_name, latest_snapshot_date)
                                ORDER BY latest_snapshot_date NULLS FIRST, account_id)
                FROM (SELECT * FROM fresh WHERE is_stale
                      ORDER BY latest_snapshot_date NULLS FIRST, account_id LIMIT %(stale_named)s) s),
               (SELECT json_agg(json_build_array(framework, pass, fail, error, muted, accounts) ORDER BY framework)
                FROM (SELECT framework, sum(pass) AS pass, sum(fail) AS fail, sum(error) AS error,
                             sum(muted) AS muted, count(*) AS accounts
                      FROM per GROUP BY framework) t),
               (SELECT json_agg(json_build_array(account_id, account_name, latest_snapshot_date, latest_run_date,
                                                 extracted_at, snapshot_age_days, is_stale) ORDER BY n)
                FROM ranked),
               (SELECT json_agg(json_build_array(p.account_id, p.framework, r.latest_snapshot_date,
                                                 p.pass, p.fail, p.error, p.muted) ORDER BY r.n, p.framework)
                FROM ranked r JOIN per p ON p.account_id = r.account_id)
    """,
}
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


class FilterError(ValueError):
    """A query parameter of the page that is not a known framework, account id or severity."""


# -- data -------------------------------------------------------------------------------------------

def rate(passed: int, failed: int) -> float | None:
    """Pass rate in percent: pass / (pass + fail), as aws_policy_scores defines it; errors and muted are apart."""
    return round(100.0 * passed / (passed + failed), 1) if passed + failed else None


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


def parse_filters(params: dict[str, str], frameworks: list[str]) -> dict[str, str]:
    """The filters of a request (findings and accounts), validated; empty values mean no filter."""
    wanted = {k: (params.get(k) or "").strip() for k in FINDING_FILTERS}
    unknown = sorted(set(params) - set(FINDING_FILTERS) - set(PAGING_DEFAULTS))
    if unknown:
        known = ", ".join([*FINDING_FILTERS, *PAGING_DEFAULTS])
        raise FilterError(f"unknown query parameter {unknown[0]!r}: use {known}")
    if wanted["framework"] and wanted["framework"] not in frameworks:
        raise FilterError(f"framework {wanted['framework']!r} is not in the catalogue: one of {', '.join(frameworks)}")
    if wanted["account"] and not ACCOUNT_ID.fullmatch(wanted["account"]):
        raise FilterError(f"account {wanted['account']!r} is not a 12-digit AWS account id")
    if wanted["severity"] and wanted["severity"] not in SEVERITIES:
        raise FilterError(f"severity {wanted['severity']!r} is not one of {', '.join(SEVERITIES)}")
    return {k: v for k, v in wanted.items() if v}


def parse_paging(params: dict[str, str]) -> dict[str, Any]:
    """Which page of the accounts a request wants (page, page_size, sort), validated; empty means the default."""
    wanted = {k: (params.get(k) or "").strip() or str(d) for k, d in PAGING_DEFAULTS.items()}
    paging: dict[str, Any] = {"sort": wanted["sort"]}
    for name, most in (("page", MAX_PAGE), ("page_size", MAX_PAGE_SIZE)):
        value = wanted[name]
        if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= most:
            raise FilterError(f"{name} {value!r} is not a whole number from 1 to {most:,}")
        paging[name] = int(value)
    if paging["sort"] not in ACCOUNT_SORTS:
        raise FilterError(f"sort {paging['sort']!r} is not one of {', '.join(ACCOUNT_SORTS)}")
    return paging


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
        catalogue = sorted((f for (f,) in _records(cur, "frameworks")), key=framework_key)
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
    return sorted(controls.values(), key=lambda c: (framework_key(c["framework"]), number(c)))


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
                             key=lambda t: framework_key(t["framework"])),
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
        violated = sorted(zip(frameworks, check_ids, titles, reasons, strict=True), key=lambda v: framework_key(v[0]))
        # the newest CIS version's wording, else the newest of any framework
        newest = max(violated, key=lambda v: (v[0].startswith("cis_"), framework_key(v[0])))
        findings.append({
            "problem": problem, "account_id": account_id, "resource_id": resource_id,
            "resource_type": resource_type,
            "severity": SEVERITIES[severity_rank] if severity_rank < len(SEVERITIES) else "unknown",
            "first_failing_date": first_failing, "age_days": age_days, "snapshot_date": snapshot,
            "title": newest[2], "reason": newest[3],
            "controls": [{"framework": f, "check_id": c} for f, c, _, _ in violated],
            "numbers": framework_numbers([(f, c) for f, c, _, _ in violated]),
        })
    return findings, (rows[0][-1] if rows else 0)


def framework_key(name: str) -> tuple:
    """cis_v1.2.0 < cis_v3.0.0 < ... ; other frameworks after the CIS versions."""
    prefix, _, version = name.partition("_v")
    parts = tuple(int(p) if p.isdigit() else 0 for p in version.split(".")) if version else ()
    return (prefix != "cis", prefix, parts)


def framework_label(name: str) -> str:
    return f"CIS {name.removeprefix('cis_')}" if name.startswith("cis_") else name


def framework_numbers(controls: list[tuple[str, str]]) -> str:
    """'CIS v1.2.0 1.12 · v6.0.0 2.3 · iam_hygiene IH.1': each framework family named once."""
    out, family = [], None
    for framework, check_id in sorted(controls, key=lambda c: framework_key(c[0])):
        name = "CIS" if framework.startswith("cis_") else framework
        version = framework.removeprefix("cis_") if name == "CIS" else ""
        head = version if name == family else f"{name} {version}".strip()
        family = name
        out.append(f"{head} {check_id}")
    return " · ".join(out)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.isoformat() if isinstance(value, date | datetime) else value


# -- HTML -------------------------------------------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _tone(value: float | None) -> str:
    return "" if value is None else "good" if value >= 90 else "warn" if value >= 60 else "bad"


def _run_link(url: str | None, run_id: str | None) -> str:
    """A run id on at most two unwrapped lines: its kind, then its time (the full id in the title)."""
    if not url or not run_id:
        return ""
    kind, sep, rest = run_id.partition("__")
    when = rest if sep else ""
    match = re.match(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)", when)
    if match:
        when = f"{match[1]} {match[2]}"
    text = f'<span class="nowrap">{_e(kind)}</span>' + (f'<br><span class="nowrap">{_e(when)}</span>' if when else "")
    # The page lives in a frame of the UI: open runs in the whole window, relative to the UI's base URL.
    return f'<a class="run" href="../{_e(url)}" target="_top" title="{_e(run_id)}">{text}</a>'


def _age(days: int | None) -> str:
    if days is None:
        return ""
    return "current" if days == 0 else "1 day old" if days == 1 else f"{days} days old"


SORT_LABELS = {"pass_rate": "lowest pass rate first", "fail": "most failing first",
               "stale": "stale first, oldest snapshot first", "account": "by account id"}


def page_href(data: dict[str, Any], **changes: Any) -> str:
    """A link to this page with the request's filters and paging, some of them changed; defaults left out."""
    query = {**data["filters"], **{k: v for k, v in data["paging"].items() if k in PAGING_DEFAULTS}, **changes}
    query = {k: v for k, v in query.items() if v not in ("", None) and PAGING_DEFAULTS.get(k) != v}
    return "?" + urlencode(query) if query else "./"


def _headline_html(data: dict[str, Any]) -> str:
    """The one number to report, first on the page; it follows the filters."""
    h = data.get("headline")
    if not h:
        return ""
    r = h["pass_rate"]
    scope = "all frameworks" if h["scope"] == ALL else framework_label(h["scope"])
    narrowed = "".join(f" · {k} {_e(data['filters'][k])}" for k in ("account", "severity") if k in data["filters"])
    return (f'<section id="findings-headline"><p class="headline"><b>{h["fail"]:,}</b> open findings · '
            f'pass rate <b class="rate {_tone(r)}">{"n/a" if r is None else f"{r:.1f}%"}</b> of findings · '
            f'{h["pass"]:,} passing · {h["error"]:,} error · {h["muted"]:,} muted '
            f'<span class="count">({_e(scope)}{narrowed}; snapshot {_e(h["snapshot_date"])})</span></p>'
            f'<p class="sub">{_e(DEFINITION)}; {_e(PASS_RATE)}. The tables below count verdicts per framework '
            'control and resource.</p></section>')


def _totals(data: dict[str, Any]) -> str:
    """The org-wide headline: every account, whatever page or filter is shown."""
    t = data["totals"]
    stale = (f'<a href="{_e(page_href(data, sort="stale", page=1))}">{t["stale"]:,} stale</a>'
             if t["stale"] else "0 stale")
    head = (f'<p class="headline" id="headline"><b>{t["accounts"]:,}</b> accounts · {stale}'
            + (f' · {t["never_evaluated"]:,} never evaluated' if t["never_evaluated"] else "")
            + f' · latest run {_e(t["latest_run_date"])}</p>')
    rows = []
    for f in t["frameworks"]:
        r = f["pass_rate"]
        rows.append(f'<tr data-framework="{_e(f["framework"])}"><td>{_e(framework_label(f["framework"]))}</td>'
                    f'<td class="num rate {_tone(r)}"><b>{"n/a" if r is None else f"{r:.1f}%"}</b></td>'
                    + "".join(f'<td class="num">{f[k]:,}</td>' for k in ("pass", "fail", "error", "muted", "accounts"))
                    + "</tr>")
    return (head + '<div class="scroll"><table id="totals"><thead><tr><th>framework</th><th class="fw">pass rate</th>'
            '<th class="fw">pass</th><th class="fw">fail</th><th class="fw">error</th><th class="fw">muted</th>'
            f'<th class="fw">accounts</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _pager(data: dict[str, Any], where: str) -> str:
    p, matching = data["paging"], data["accounts_matching"]
    first = (p["page"] - 1) * p["page_size"] + 1
    shown = (f"accounts {first:,}–{first + len(data['accounts']) - 1:,} of {matching:,}" if data["accounts"]
             else f"no accounts on page {p['page']:,} of {p['pages']:,}")
    prev = (f'<a rel="prev" href="{_e(page_href(data, page=min(p["page"] - 1, p["pages"])))}">‹ previous</a>'
            if p["page"] > 1 else '<span class="off">‹ previous</span>')
    nxt = (f'<a rel="next" href="{_e(page_href(data, page=p["page"] + 1))}">next ›</a>'
           if p["page"] < p["pages"] else '<span class="off">next ›</span>')
    return (f'<nav class="pager" id="accounts-pager-{where}">{prev} <span class="count">{shown} · page '
            f'{min(p["page"], p["pages"]):,} of {p["pages"]:,} · {_e(SORT_LABELS[p["sort"]])}</span> {nxt}</nav>')


def _scores_table(data: dict[str, Any]) -> str:
    if not data["accounts"]:
        if data["filters"].get("account") and not data["accounts_matching"]:
            return (f'<p class="empty" id="no-accounts">The account {_e(data["filters"]["account"])} is not among '
                    'the audited accounts.</p>')
        return _pager(data, "top")
    frameworks = data["frameworks"]
    cells_of: dict[str, dict[str, Any]] = {}
    for s in data["scores"]:
        cells_of.setdefault(s["account_id"], {})[s["framework"]] = s
    head = "".join(f'<th class="fw">{_e(framework_label(f))}</th>' for f in frameworks)
    rows = []
    for a in data["accounts"]:
        snapshot = a["latest_snapshot_date"]
        if snapshot is None:
            fresh = (f'<span class="badge stale">stale</span><div class="detail">never evaluated · latest run '
                     f'<span class="nowrap">{_e(a["latest_run_date"])}</span></div>')
        elif a["is_stale"]:
            fresh = (f'<span class="badge stale">stale</span> <span class="nowrap">{_e(snapshot)}</span>'
                     f'<div class="detail">{_e(_age(a["snapshot_age_days"]))}: latest run '
                     f'<span class="nowrap">{_e(a["latest_run_date"])}</span></div>')
        else:
            fresh = f'<span class="nowrap">{_e(snapshot)}</span><div class="detail">current</div>'
        fresh += f'<div class="detail">{_run_link(a["run_url"], a["run_id"])}</div>'
        cells = []
        for framework in frameworks:
            s = cells_of.get(a["account_id"], {}).get(framework)
            if s is None:
                cells.append('<td class="num">–</td>')
                continue
            r = s["pass_rate"]
            title = (f'{framework} · snapshot {s["snapshot_date"]}: pass {s["pass"]} · fail {s["fail"]} · '
                     f'error {s["error"]} · muted {s["muted"]}')
            extra = "".join(f'<div class="detail {cls}">{n} {label}</div>' for n, label, cls in (
                (s["error"], "error", "err"), (s["muted"], "muted", "")) if n)
            value = "n/a" if r is None else f"{r:.1f}%"
            bar = "" if r is None else f'<span class="bar"><span style="width:{r:.0f}%"></span></span>'
            cells.append(f'<td class="num rate {_tone(r)}" title="{_e(title)}"><b>{value}</b>{bar}'
                         f'<div class="detail">{s["fail"]} fail</div>{extra}</td>')
        stale = " stale" if a["is_stale"] else ""
        rows.append(f'<tr class="account{stale}" data-account="{_e(a["account_id"])}">'
                    f'<td><div class="name">{_e(a["account_name"])}</div>'
                    f'<div class="mono detail">{_e(a["account_id"])}</div></td><td class="fresh">{fresh}</td>'
                    f'{"".join(cells)}</tr>')
    return (_pager(data, "top") + '<div class="scroll"><table id="scores"><thead><tr><th>account</th><th>snapshot</th>'
            f'{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>' + _pager(data, "bottom"))


def _filter_form(data: dict[str, Any]) -> str:
    chosen = {**data["filters"], "sort": data["paging"].get("sort")}

    def options(name: str, values: list[tuple[str, str]], blank: bool = True) -> str:
        opts = ['<option value="">all</option>'] if blank else []
        opts += [f'<option value="{_e(v)}"{" selected" if chosen.get(name) == v else ""}>{_e(label)}</option>'
                 for v, label in values]
        return f'<label>{name} <select name="{name}">{"".join(opts)}</select></label>'

    # a text field, not a list: the organisation may have thousands of accounts
    account = ('<label>account <input name="account" inputmode="numeric" pattern="[0-9]{12}" size="14" '
               f'maxlength="12" placeholder="12-digit id" value="{_e(chosen.get("account", ""))}"></label>')
    size = data["paging"].get("page_size", PAGING_DEFAULTS["page_size"])
    keep = f'<input type="hidden" name="page_size" value="{size}">' if size != PAGING_DEFAULTS["page_size"] else ""
    return ('<form id="filters" method="get" action="">'
            + options("framework", [(f, framework_label(f)) for f in data["catalogue_frameworks"]])
            + account + options("severity", [(s, s) for s in SEVERITIES])
            + options("sort", list(SORT_LABELS.items()), blank=False) + keep
            + '<button type="submit">filter</button>'
            + (' <a href="./">clear</a>' if data["filters"] or page_href(data) != "./" else "") + "</form>")


def _findings_table(data: dict[str, Any]) -> str:
    if not data["findings"]:
        return '<p class="empty" id="no-findings">No open failing findings' + (
            " match these filters." if data["filters"] else " in the latest snapshots.") + "</p>"
    rows = []
    for f in data["findings"]:
        stale = ' <span class="badge stale">stale</span>' if f["account_stale"] else ""
        rows.append(
            f'<tr class="finding" data-severity="{_e(f["severity"])}" data-account="{_e(f["account_id"])}"'
            f' data-logic="{_e(f["problem"])}" data-resource="{_e(f["resource_id"])}"'
            f' data-frameworks="{_e(" ".join(c["framework"] for c in f["controls"]))}"'
            f' data-since="{_e(f["first_failing_date"])}">'
            f'<td><span class="sev {_e(f["severity"])}">{_e(f["severity"])}</span></td>'
            f'<td><span class="mono">{_e(f["account_id"])}</span>{stale}<div class="detail">{_e(f["account_name"])}'
            f'</div></td>'
            f'<td>{_e(f["title"])}<div class="detail numbers">{_numbers_html(f["numbers"])}</div></td>'
            f'<td class="mono wrap">{_breakable(f["resource_id"])}</td>'
            f'<td class="reason">{_e(f["reason"])}</td>'
            f'<td><span class="nowrap">{_e(f["first_failing_date"])}</span>'
            f'<div class="detail">{_e(_open_for(f["age_days"]))}</div></td>'
            f'<td>{_run_link(f["run_url"], f["run_id"])}</td></tr>'
        )
    return ('<div class="scroll"><table id="findings"><thead><tr><th>severity</th><th>account</th><th>problem</th>'
            '<th>resource</th><th>reason</th><th>failing since</th><th>DAG run</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _evidence_section(data: dict[str, Any]) -> str:
    """Manual controls with the organisation facts their audit reads: for a person to assess, never a pass."""
    controls = data.get("manual_evidence") or []
    if not controls:
        return ('<p class="empty" id="no-evidence">No organisation evidence collected yet (the discovery '
                'credentials must read Organizations and iam:ListOrganizationsFeatures).</p>')
    out = []
    for c in controls:
        rows = "".join(
            f'<tr class="fact{" attention" if f["attention"] else ""}" data-attention="{str(f["attention"]).lower()}"'
            f' data-account="{_e(f["account_id"] or "")}">'
            f'<td>{"<b>look</b>" if f["attention"] else ""}</td>'
            f'<td><span class="mono">{_e(f["account_id"] or "")}</span>'
            f'<div class="detail">{_e(f["account_name"] or "")}</div></td><td>{_e(f["subject"])}</td>'
            f'<td class="reason">{_e(f["detail"])}</td></tr>'
            for f in c["facts"])
        more = (f' <span class="count">({len(c["facts"])} of {c["total"]} facts shown)</span>'
                if c["total"] > len(c["facts"]) else "")
        out.append(
            f'<div class="manual-control" data-framework="{_e(c["framework"])}" data-control="{_e(c["check_id"])}">'
            f'<h3>{_e(framework_label(c["framework"]))} {_e(c["check_id"])} (manual) · {_e(c["title"])}'
            f' <span class="count">{c["flagged"]} of {c["total"]} need a look · snapshot {_e(c["snapshot_date"])}'
            f'</span>{more}</h3>'
            '<div class="scroll"><table class="evidence"><thead><tr><th></th><th>account</th><th>fact</th>'
            f'<th>evidence</th></tr></thead><tbody>{rows}</tbody></table></div></div>')
    return "".join(out)


def _breakable(identifier: str | None) -> str:
    """An ARN or key, escaped, that may wrap only after its ':' and '/' separators: never inside an account
    id or a name (the cell's overflow-wrap breaks a single over-long name as a last resort)."""
    return re.sub(r"([:/])", r"\1<wbr>", _e(identifier))


def _numbers_html(numbers: str) -> str:
    """Each 'version number' pair kept on one line; lines break only between pairs."""
    return " · ".join(f'<span class="nowrap">{_e(item)}</span>' for item in numbers.split(" · "))


def _open_for(days: int | None) -> str:
    if days is None:
        return ""
    return "new in the latest snapshot" if days == 0 else f"open {days} day{'s' if days != 1 else ''}"


# Ten well-separated hues (Tableau 10), then the same hues again with dash patterns: every
# series gets its own (colour, dash) pair, and lines stay apart where colours are close.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#4b4b4b")
DASHES = ("", "6 3", "2 3", "8 3 2 3")


def series_style(index: int) -> tuple[str, str]:
    """(colour, stroke-dasharray) of the index-th series: distinct for len(PALETTE) * len(DASHES) series,
    then generated hues (golden angle) with the dash patterns."""
    if index < len(PALETTE) * len(DASHES):
        return PALETTE[index % len(PALETTE)], DASHES[index // len(PALETTE)]
    hue = (index * 137.508) % 360
    return f"hsl({hue:.1f}, 65%, {40 + 12 * (index % 2)}%)", DASHES[index % len(DASHES)]


def _trend_chart(data: dict[str, Any]) -> str:
    """One inline SVG line per framework: pass rate over the newest snapshots."""
    trend = data["trend"]
    if not trend:
        return ""
    dates = sorted({t["snapshot_date"] for t in trend})
    frameworks = sorted({t["framework"] for t in trend}, key=framework_key)
    width, height, pad = 720, 200, 34
    step = (width - 2 * pad) / max(len(dates) - 1, 1)
    parts = [f'<svg id="trend-chart" viewBox="0 0 {width} {height}" role="img" aria-label="pass rate trend">']
    for pct in (0, 50, 100):
        y = height - pad - (height - 2 * pad) * pct / 100
        parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="2" y="{y + 4:.1f}" class="axis">{pct}%</text>')
    legend = []
    for i, framework in enumerate(frameworks):
        colour, dash = series_style(i)
        points = []
        for t in trend:
            if t["framework"] == framework and t["pass_rate"] is not None:
                x = pad + step * dates.index(t["snapshot_date"]) if len(dates) > 1 else width / 2
                y = height - pad - (height - 2 * pad) * t["pass_rate"] / 100
                points.append((x, y))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        series = [f'<g class="series" data-framework="{_e(framework)}" data-colour="{colour}" data-dash="{dash}">']
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            series.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>')
        series += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{_e(framework)}</title></circle>'
                   for x, y in points]
        parts += series + ["</g>"]
        legend.append(f'<span class="key"><svg width="22" height="10"><line x1="0" x2="22" y1="5" y2="5" '
                      f'stroke="{colour}" stroke-width="3"{dash_attr}/></svg>{_e(framework_label(framework))}</span>')
    parts.append(f'<text x="{pad}" y="{height - 8}" class="axis">{_e(dates[0])}</text>')
    if len(dates) > 1:
        parts.append(f'<text x="{width - pad}" y="{height - 8}" class="axis" text-anchor="end">{_e(dates[-1])}</text>')
    parts.append("</svg>")
    return '<div class="trend">' + "".join(parts) + f'<div class="legend">{"".join(legend)}</div></div>'


def _trend_table(data: dict[str, Any]) -> str:
    if not data["trend"]:
        return ""
    frameworks = sorted({t["framework"] for t in data["trend"]}, key=framework_key)
    by_date: dict[str, dict[str, Any]] = {}
    for t in data["trend"]:
        by_date.setdefault(t["snapshot_date"], {})[t["framework"]] = t
    rows = []
    for day in sorted(by_date, reverse=True):
        cells = []
        for framework in frameworks:
            t = by_date[day].get(framework)
            if t is None:
                cells.append('<td class="num">–</td>')
                continue
            r = t["pass_rate"]
            title = f'pass {t["pass"]} · fail {t["fail"]} · error {t["error"]} · muted {t["muted"]} · ' \
                    f'{t["accounts"]} accounts'
            cells.append(f'<td class="num rate {_tone(r)}" title="{_e(title)}">'
                         f'{"n/a" if r is None else f"{r:.1f}%"}</td>')
        rows.append(f'<tr><td class="nowrap">{_e(day)}</td>{"".join(cells)}</tr>')
    head = "".join(f'<th class="fw">{_e(framework_label(f))}</th>' for f in frameworks)
    return ('<details><summary>pass rate per snapshot (table)</summary><div class="scroll"><table id="trend">'
            f'<thead><tr><th>snapshot</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div></details>')


def _alerts_table(data: dict[str, Any]) -> str:
    rows = data.get("alerts_sent") or []
    if not rows:
        return '<p class="count" id="alerts-sent">No alert sent yet.</p>'
    cells = "".join(
        f"<tr><td>{_e(str(a['sent_at'])[:19])}</td><td>{_e(a['rule'])}</td><td>{_e(a['channel'])} "
        f"{_e(a['recipient'])}</td><td>{_e(a['account_id'] or '')}</td><td>{_e(a['severity'] or '')}</td>"
        f"<td>{_e(a['title'] or '')}</td><td>{_breakable(a['resource_id'] or '')}</td></tr>" for a in rows)
    return ('<table id="alerts-sent"><thead><tr><th>sent</th><th>rule</th><th>to</th><th>account</th>'
            f'<th>severity</th><th>alert</th><th>resource</th></tr></thead><tbody>{cells}</tbody></table>')


def _css() -> str:
    try:
        return (STATIC_DIR / "style.css").read_text()
    except OSError:
        return ""


def _stale_notice(data: dict[str, Any]) -> str:
    t = data["totals"]
    count, named = t["stale"], t["stale_named"]
    if not count:
        return ""
    names = ", ".join(f'{a["account_id"]} {a["account_name"] or ""}'.strip() for a in named)
    more = count - len(named)
    rest = (f' and {more:,} more (<a href="{_e(page_href(data, sort="stale", page=1))}">list the stale accounts '
            'first</a>)') if more > 0 else ""
    return (f'<div class="notice warn" id="stale">{count:,} account{"s are" if count > 1 else " is"} '
            f"stale: no evaluated snapshot from the latest run ({_e(t['latest_run_date'])}), so "
            f"{'their' if count > 1 else 'its'} verdicts below are older: {_e(names)}{rest}. "
            "See the failed tasks of the latest run.</div>")


def render_page(data: dict[str, Any] | None, error: str | None = None, warning: str | None = None) -> str:
    body: list[str] = ['<header><h1>CIS compliance</h1>'
                       f'<p class="sub">DAG <a href="../dags/{DAG_ID}" target="_top">{DAG_ID}</a> · '
                       'pass rate = pass / (pass + fail) of each account\'s newest evaluated snapshot; errors '
                       'and muted fails (accepted exceptions) are counted beside it, not in it</p></header>']
    warning = warning or (data or {}).get("warning")
    if warning:
        body.append(f'<div class="notice warn" id="connection-warning">{_e(warning)}</div>')
    if error:
        body.append(f'<div class="notice bad" id="error">{_e(error)}</div>')
    elif data and data["missing_views"]:
        body.append(f'<div class="notice" id="no-results">The compliance views are missing '
                    f'({_e(", ".join(data["missing_views"]))}). Trigger the <a href="../dags/{DAG_ID}" '
                    f'target="_top">{DAG_ID}</a> DAG: its first task creates them.</div>')
    elif not data or not data["available"]:
        body.append(f'<div class="notice" id="no-results">No results yet. Trigger the <a href="../dags/{DAG_ID}" '
                    f'target="_top">{DAG_ID}</a> DAG; its verdicts appear here when the run has finished.</div>')
    else:
        shown, total = len(data["findings"]), data["findings_total"]
        body += [
            # what a person came for first: the headline, the filters, then the worst open findings they
            # select; the per-framework and per-account tables follow
            _headline_html(data),
            _stale_notice(data),
            _filter_form(data),
            f'<section id="open-findings"><h2>Open failing findings <span class="count">(worst severity first, '
            f'then oldest; {shown} of {total} problems)</span></h2>', _findings_table(data), "</section>",
            '<section><h2>Organisation <span class="count">(all accounts, each at its newest evaluated '
            'snapshot)</span></h2>', _totals(data), "</section>",
            "<section><h2>Pass rate per account and framework</h2>", _scores_table(data), "</section>",
            '<section id="manual"><h2>Manual controls: evidence for the assessor <span class="count">(organisation '
            'facts their audit reads; a person decides, never counted as a pass)</span></h2>',
            _evidence_section(data), "</section>",
            f"<section><h2>Trend over the last {TREND_SNAPSHOTS} snapshots</h2>",
            _trend_chart(data), _trend_table(data), "</section>",
            f'<section><h2>Last alerts sent <span class="count">(newest {ALERTS_SHOWN})</span></h2>',
            _alerts_table(data), "</section>",
        ]
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Compliance</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<style>{_css()}</style></head><body>{"".join(body)}<script>{_SCRIPT}</script></body></html>')


# The UI shows this page in a sandboxed frame that may not navigate the window itself: links
# marked target=_top are followed by a link created in the UI's own (same-origin) document.
_SCRIPT = """
document.addEventListener('click', function (ev) {
  var a = ev.target.closest('a[target="_top"]');
  if (!a || window.top === window) return;
  try {
    var doc = window.top.document, link = doc.createElement('a');
    link.href = a.href;
    doc.body.appendChild(link);
    link.click();
    link.remove();
    ev.preventDefault();
  } catch (e) { /* not same-origin: leave it to the browser */ }
});
"""


# -- the app ----------------------------------------------------------------------------------------

def _authorize() -> Any:
    """Who may see the page: whoever may read the DAG (the UI's session cookie is sent to the frame).

    Without Airflow's authorization the page must not be served at all (fail closed)."""
    from fastapi import HTTPException

    try:
        from airflow.api_fastapi.core_api.security import requires_access_dag
    except ImportError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log.error("Compliance page disabled: Airflow's authorization could not be imported (%s)", reason)

        def refuse() -> None:
            raise HTTPException(status_code=503, detail="The Compliance page is disabled: Airflow's authorization "
                                                        "is unavailable in this API server (see its log).")

        return refuse
    return requires_access_dag("GET", param_dag_id=DAG_ID)


def page_concurrency() -> int:
    """Requests of the page read from the database at most this many at a time (the others wait)."""
    return max(1, int(os.environ.get("IAM_AUDIT_PAGE_CONCURRENCY", "2")))


def page_deadline_seconds() -> float:
    """A request of the page answers within this time (waiting included), else 503 'busy'."""
    return max(1.0, float(os.environ.get("IAM_AUDIT_PAGE_DEADLINE_SECONDS", "30")))


def page_cache_seconds() -> float:
    """The same parameters within this time reuse the last answer instead of querying again."""
    return max(0.0, float(os.environ.get("IAM_AUDIT_PAGE_CACHE_SECONDS", "30")))


class PageCache:
    """The page's answers per parameter set for page_cache_seconds, at most `entries` of them (oldest out)."""

    def __init__(self, entries: int = 64) -> None:
        self.entries = entries
        self._data: dict[tuple, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def load(self, params: dict[str, str]) -> dict[str, Any]:
        key = tuple(sorted(params.items()))
        with self._lock:
            hit = self._data.get(key)
            if hit and hit[0] > time.monotonic():
                return hit[1]
        data = load_compliance(params=params)
        ttl = page_cache_seconds()
        if ttl:
            with self._lock:
                self._data.pop(key, None)
                self._data[key] = (time.monotonic() + ttl, data)
                while len(self._data) > self.entries:
                    self._data.pop(next(iter(self._data)))
        return data


def create_app() -> "FastAPI":
    # imported here, not at the top: every task process loads the plugins (for their macros) and
    # never serves the page; annotations below are evaluated in this scope (no `from __future__`)
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    app = FastAPI(title="CIS compliance", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(_authorize())])

    limiter: list[Any] = []  # created on the first request: an anyio limiter needs the running event loop
    cache = PageCache()

    async def _load(request: Request) -> tuple[dict[str, Any] | None, str | None, int]:
        import anyio

        if not limiter:
            limiter.append(anyio.CapacityLimiter(page_concurrency()))
        params = dict(request.query_params)
        try:
            # The page's reads run in threads of its own small limiter, never in the thread pool that the
            # API server's synchronous routes (the Execution API's included) share, and give up at the deadline.
            with anyio.fail_after(page_deadline_seconds()):
                return await anyio.to_thread.run_sync(cache.load, params, limiter=limiter[0],
                                                      abandon_on_cancel=True), None, 200
        except FilterError as exc:
            return None, f"Bad filter: {exc}", 400
        except TimeoutError:
            log.warning("Compliance page: no answer within %ss (%d requests at most at a time)",
                        page_deadline_seconds(), page_concurrency())
            return None, "The Compliance page is busy: try again in a moment.", 503
        except Exception:  # the viewer gets a reference; host, login and the error go to the log only
            reference = uuid.uuid4().hex[:12]
            log.exception("Compliance page: reading the compliance database failed (reference %s)", reference)
            return None, (f"The compliance database could not be read (reference {reference}). An administrator "
                          "finds the cause under that reference in the API server's log."), 503

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> HTMLResponse:
        data, error, status = await _load(request)
        return HTMLResponse(render_page(data, error), status_code=status)

    @app.get("/api/summary")
    async def summary(request: Request) -> JSONResponse:
        data, error, status = await _load(request)
        if error is not None:
            return JSONResponse({"error": error}, status_code=status)
        return JSONResponse(data)

    @app.get("/icon.svg", include_in_schema=False)
    def icon() -> FileResponse:
        return FileResponse(STATIC_DIR / "icon.svg", media_type="image/svg+xml")

    return app


class LazyApp:
    """The page's ASGI app, built on its first request in the API server.

    Building it imports Airflow's API security (about 1.7 CPU-seconds), and every task instance's
    process loads the plugins folder (the task runner integrates plugin macros) without ever
    serving the page: built at import, it cost each task instance more than the rest of its
    start-up (docs/performance.md, "Airflow's own overhead per task instance")."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._app = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = self._factory()
        await self._app(scope, receive, send)


class CompliancePlugin(AirflowPlugin):
    name = "iam_audit_compliance"
    fastapi_apps = [{"app": LazyApp(create_app), "url_prefix": URL_PREFIX, "name": "CIS compliance"}]
    external_views = [{
        "name": "Compliance",
        # Relative to the UI's base URL (no leading slash), so it also works behind a path prefix.
        "href": URL_PREFIX.lstrip("/") + "/",
        "url_route": "compliance",
        "destination": "nav",
        "nav_top_level": True,
        "icon": URL_PREFIX.lstrip("/") + "/icon.svg",
    }]
