"""The "Compliance" page of the Airflow UI: CIS verdicts from aws_policy_results, inside Airflow.

A FastAPI app mounted by the API server under /compliance (``fastapi_apps``) renders
one server-side HTML page; an ``external_views`` entry puts it in the UI's navigation,
where the UI shows it in a frame at /plugin/compliance. The page reads the compliance
database through the ``postgres_default`` connection and shows:

- the latest pass rate per account and framework (pass / all verdicts of the newest snapshot),
- the newest failing findings, each linked to the DAG run that found it,
- the trend of the pass rate per framework over the last snapshots.

All SQL is in QUERIES below: switching to views is a change of that dict only.
``GET /compliance/api/summary`` returns the same data as JSON.
"""

from __future__ import annotations

import html
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

log = logging.getLogger(__name__)

DAG_ID = "aws_iam_cis"
POSTGRES_CONN_ID = "postgres_default"
URL_PREFIX = "/compliance"
STATIC_DIR = Path(__file__).resolve().parent / "compliance"
TREND_SNAPSHOTS = 30
FINDINGS_LIMIT = 50

# Every statement the page runs. The results table is the contract; views over it
# (sql/views/) can replace these statements one by one without touching the rest.
QUERIES = {
    "relations": """
        SELECT to_regclass('public.aws_policy_results') IS NOT NULL,
               to_regclass('iam_stage.accounts') IS NOT NULL
    """,
    # account_id -> newest known account name
    "account_names": """
        SELECT DISTINCT ON (account_id) account_id, account_name
        FROM iam_stage.accounts
        WHERE account_name IS NOT NULL
        ORDER BY account_id, snapshot_date DESC
    """,
    # newest snapshot of each account and framework, with its verdict counts
    # (aws_policy_account_latest reads per-evaluation counts, not every verdict)
    "scores": """
        SELECT account_id, framework, snapshot_date, pass_count AS passed, fail_count AS failed,
               error_count AS errors, run_id
        FROM aws_policy_account_latest
        ORDER BY account_id, framework
    """,
    # failing verdicts of each account's newest snapshot, worst and newest first
    # (LATERAL: each account and framework reads its one date of aws_policy_results)
    "open_findings": """
        SELECT r.snapshot_date, r.framework, r.check_id, r.title, r.severity, r.account_id,
               r.resource_id, r.resource_type, r.reason, r.run_id, r.evaluated_at
        FROM aws_policy_account_latest l
        CROSS JOIN LATERAL (
            SELECT * FROM aws_policy_results r
            WHERE r.account_id = l.account_id AND r.framework = l.framework
              AND r.snapshot_date = l.snapshot_date AND r.status = 'fail'
        ) r
        ORDER BY r.evaluated_at DESC,
                 CASE r.severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END,
                 r.framework DESC, r.account_id, r.check_id, r.resource_id
        LIMIT %(limit)s
    """,
    # pass rate per framework over the newest snapshots (all accounts together)
    "trend": """
        SELECT snapshot_date, framework, pass_count AS passed, raw_fail_count AS failed,
               error_count AS errors, accounts
        FROM aws_policy_framework_scores
        WHERE snapshot_date IN (
            SELECT snapshot_date FROM aws_policy_snapshots
            ORDER BY snapshot_date DESC LIMIT %(snapshots)s
        )
        ORDER BY snapshot_date, framework
    """,
}


# -- data -------------------------------------------------------------------------------------------

def _rate(passed: int, failed: int, errors: int) -> float | None:
    total = passed + failed + errors
    return round(100.0 * passed / total, 1) if total else None


def run_url(run_id: str | None) -> str | None:
    """The Airflow 3 UI page of a run of the DAG, relative to the UI's base URL."""
    if not run_id:
        return None
    return f"dags/{DAG_ID}/runs/{quote(run_id, safe='')}"


def load_compliance(hook: Any = None) -> dict[str, Any]:
    """Everything the page shows, as plain data. ``available`` is False before the first run."""
    if hook is None:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        hook = PostgresHook(postgres_conn_id=POSTGRES_CONN_ID)
    has_results, has_accounts = hook.get_first(QUERIES["relations"])
    data: dict[str, Any] = {"available": False, "scores": [], "findings": [], "trend": [], "frameworks": []}
    if not has_results:
        return data
    names = dict(hook.get_records(QUERIES["account_names"])) if has_accounts else {}
    for account_id, framework, snapshot, passed, failed, errors, run_id in hook.get_records(QUERIES["scores"]):
        data["scores"].append({
            "account_id": account_id, "account_name": names.get(account_id) or "", "framework": framework,
            "snapshot_date": str(snapshot), "pass": passed, "fail": failed, "error": errors,
            "pass_rate": _rate(passed, failed, errors), "run_id": run_id, "run_url": run_url(run_id),
        })
    columns = ("snapshot_date", "framework", "check_id", "title", "severity", "account_id", "resource_id",
               "resource_type", "reason", "run_id", "evaluated_at")
    for row in hook.get_records(QUERIES["open_findings"], parameters={"limit": FINDINGS_LIMIT}):
        finding = {k: _plain(v) for k, v in zip(columns, row, strict=True)}
        finding["account_name"] = names.get(finding["account_id"]) or ""
        finding["run_url"] = run_url(finding["run_id"])
        data["findings"].append(finding)
    for snapshot, framework, passed, failed, errors, accounts in hook.get_records(
        QUERIES["trend"], parameters={"snapshots": TREND_SNAPSHOTS}
    ):
        data["trend"].append({
            "snapshot_date": str(snapshot), "framework": framework, "pass": passed, "fail": failed,
            "error": errors, "accounts": accounts, "pass_rate": _rate(passed, failed, errors),
        })
    data["frameworks"] = sorted({s["framework"] for s in data["scores"]}, key=_framework_key)
    data["available"] = bool(data["scores"])
    return data


def _framework_key(name: str) -> tuple:
    """cis_v1.2.0 < cis_v3.0.0 < ... ; other frameworks after the CIS versions."""
    prefix, _, version = name.partition("_v")
    parts = tuple(int(p) if p.isdigit() else 0 for p in version.split(".")) if version else ()
    return (prefix != "cis", prefix, parts)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


# -- HTML -------------------------------------------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _shorten(text: str | None, limit: int = 180) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _rate_cell(rate: float | None) -> str:
    if rate is None:
        return '<td class="num">n/a</td>'
    tone = "good" if rate >= 90 else "warn" if rate >= 60 else "bad"
    return (f'<td class="num rate {tone}"><span class="bar"><span style="width:{rate:.0f}%"></span></span>'
            f"{rate:.1f}%</td>")


def _run_link(url: str | None, run_id: str | None) -> str:
    if not url:
        return ""
    # The page lives in a frame of the UI: open runs in the whole window, relative to the UI's base URL.
    return f'<a href="../{_e(url)}" target="_top" title="{_e(run_id)}">{_e(run_id)}</a>'


def _scores_table(data: dict[str, Any]) -> str:
    frameworks = data["frameworks"]
    by_account: dict[str, dict[str, Any]] = {}
    for s in data["scores"]:
        by_account.setdefault(s["account_id"], {"name": s["account_name"], "cells": {}})["cells"][s["framework"]] = s
    head = "".join(f"<th>{_e(f)}</th>" for f in frameworks)
    rows = []
    for account_id, entry in sorted(by_account.items()):
        cells = []
        for framework in frameworks:
            s = entry["cells"].get(framework)
            if s is None:
                cells.append('<td class="num">–</td>')
                continue
            cell = _rate_cell(s["pass_rate"])
            errors = f" · {s['error']} error" if s["error"] else ""
            total = s["pass"] + s["fail"] + s["error"]
            detail = (f'<div class="detail" title="snapshot {_e(s["snapshot_date"])}">'
                      f'{s["fail"]} fail{errors} / {total}</div>')
            cells.append(cell.replace("</td>", detail + "</td>"))
        rows.append(f'<tr data-account="{_e(account_id)}"><td class="mono">{_e(account_id)}</td>'
                    f'<td>{_e(entry["name"])}</td>{"".join(cells)}</tr>')
    return (f'<table id="scores"><thead><tr><th>account</th><th>name</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _findings_table(data: dict[str, Any]) -> str:
    if not data["findings"]:
        return '<p class="empty">No failing findings in the latest snapshots.</p>'
    rows = []
    for f in data["findings"]:
        rows.append(
            f'<tr class="finding"><td><span class="sev {_e(f["severity"])}">{_e(f["severity"])}</span></td>'
            f'<td class="mono">{_e(f["account_id"])}<div class="detail">{_e(f["account_name"])}</div></td>'
            f'<td>{_e(f["framework"])} <b>{_e(f["check_id"])}</b><div class="detail">{_e(f["title"])}</div></td>'
            f'<td class="mono wrap">{_e(f["resource_id"])}</td><td class="reason" title="{_e(f["reason"])}">'
            f'{_e(_shorten(f["reason"]))}</td>'
            f'<td>{_e(f["snapshot_date"])}</td><td class="wrap">{_run_link(f["run_url"], f["run_id"])}</td></tr>'
        )
    return ('<table id="findings"><thead><tr><th>severity</th><th>account</th><th>control</th><th>resource</th>'
            f'<th>reason</th><th>snapshot</th><th>DAG run</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _trend_chart(data: dict[str, Any]) -> str:
    """One inline SVG line per framework: pass rate over the newest snapshots."""
    trend = data["trend"]
    if not trend:
        return ""
    dates = sorted({t["snapshot_date"] for t in trend})
    frameworks = sorted({t["framework"] for t in trend}, key=_framework_key)
    width, height, pad = 640, 180, 30
    step = (width - 2 * pad) / max(len(dates) - 1, 1)
    colours = ["#2563eb", "#d97706", "#059669", "#7c3aed", "#dc2626"]
    parts = [f'<svg id="trend-chart" viewBox="0 0 {width} {height}" role="img" aria-label="pass rate trend">']
    for pct in (0, 50, 100):
        y = height - pad - (height - 2 * pad) * pct / 100
        parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="2" y="{y + 4:.1f}" class="axis">{pct}%</text>')
    legend = []
    for i, framework in enumerate(frameworks):
        colour = colours[i % len(colours)]
        points = []
        for t in trend:
            if t["framework"] == framework and t["pass_rate"] is not None:
                x = pad + step * dates.index(t["snapshot_date"]) if len(dates) > 1 else width / 2
                y = height - pad - (height - 2 * pad) * t["pass_rate"] / 100
                points.append((x, y))
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>' for x, y in points]
        legend.append(f'<span><i style="background:{colour}"></i>{_e(framework)}</span>')
    parts.append(f'<text x="{pad}" y="{height - 6}" class="axis">{_e(dates[0])}</text>')
    if len(dates) > 1:
        parts.append(f'<text x="{width - pad}" y="{height - 6}" class="axis" text-anchor="end">{_e(dates[-1])}</text>')
    parts.append("</svg>")
    return "".join(parts) + f'<div class="legend">{"".join(legend)}</div>'


def _trend_table(data: dict[str, Any]) -> str:
    if not data["trend"]:
        return ""
    rows = "".join(
        f'<tr><td>{_e(t["snapshot_date"])}</td><td>{_e(t["framework"])}</td>{_rate_cell(t["pass_rate"])}'
        f'<td class="num">{t["pass"]}</td><td class="num">{t["fail"]}</td><td class="num">{t["error"]}</td>'
        f'<td class="num">{t["accounts"]}</td></tr>'
        for t in reversed(data["trend"])
    )
    return ('<table id="trend"><thead><tr><th>snapshot</th><th>framework</th><th>pass rate</th><th>pass</th>'
            f'<th>fail</th><th>error</th><th>accounts</th></tr></thead><tbody>{rows}</tbody></table>')


def _css() -> str:
    try:
        return (STATIC_DIR / "style.css").read_text()
    except OSError:
        return ""


def render_page(data: dict[str, Any] | None, error: str | None = None) -> str:
    body: list[str] = ['<header><h1>CIS compliance</h1>'
                       f'<p class="sub">DAG <a href="../dags/{DAG_ID}" target="_top">{DAG_ID}</a> · '
                       'table <code>aws_policy_results</code> · pass rate = pass verdicts / all verdicts of the '
                       'newest snapshot</p></header>']
    if error:
        body.append(f'<div class="notice bad" id="error">The compliance database could not be read: {_e(error)}'
                    f'<br>Check the <code>{POSTGRES_CONN_ID}</code> connection.</div>')
    elif not data or not data["available"]:
        body.append(f'<div class="notice" id="no-results">No results yet. Trigger the <a href="../dags/{DAG_ID}" '
                    f'target="_top">{DAG_ID}</a> DAG; its verdicts appear here when the run has finished.</div>')
    else:
        body += [
            "<section><h2>Latest pass rate per account and framework</h2>", _scores_table(data), "</section>",
            f'<section><h2>Newest failing findings <span class="count">({len(data["findings"])}'
            f'{"+" if len(data["findings"]) >= FINDINGS_LIMIT else ""})</span></h2>',
            _findings_table(data), "</section>",
            f"<section><h2>Trend over the last {TREND_SNAPSHOTS} snapshots</h2>",
            _trend_chart(data), _trend_table(data), "</section>",
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
    """Who may see the page: whoever may read the DAG (the UI's session cookie is sent to the frame)."""
    try:
        from airflow.api_fastapi.core_api.security import requires_access_dag
    except ImportError:  # pragma: no cover - other Airflow versions
        return lambda: None
    return requires_access_dag("GET", param_dag_id=DAG_ID)


def create_app() -> FastAPI:
    app = FastAPI(title="CIS compliance", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(_authorize())])

    def _load() -> tuple[dict[str, Any] | None, str | None]:
        try:
            return load_compliance(), None
        except Exception as exc:  # the page must say what is wrong rather than fail
            log.exception("reading the compliance database failed")
            return None, f"{type(exc).__name__}: {exc}"

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        data, error = _load()
        return HTMLResponse(render_page(data, error), status_code=200 if error is None else 503)

    @app.get("/api/summary")
    def summary() -> JSONResponse:
        data, error = _load()
        if error is not None:
            return JSONResponse({"error": error}, status_code=503)
        return JSONResponse(data)

    @app.get("/icon.svg", include_in_schema=False)
    def icon() -> FileResponse:
        return FileResponse(STATIC_DIR / "icon.svg", media_type="image/svg+xml")

    return app


class CompliancePlugin(AirflowPlugin):
    name = "iam_audit_compliance"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "CIS compliance"}]
    external_views = [{
        "name": "Compliance",
        # Relative to the UI's base URL (no leading slash), so it also works behind a path prefix.
        "href": URL_PREFIX.lstrip("/") + "/",
        "url_route": "compliance",
        "destination": "nav",
        "nav_top_level": True,
        "icon": URL_PREFIX.lstrip("/") + "/icon.svg",
    }]
