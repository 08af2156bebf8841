"""A self-contained HTML compliance report of one snapshot (inline CSS, no script, no external link).

Reads what the BI views show (aws_policy_scores, aws_policy_results_effective,
aws_policy_muted_verdicts, aws_policy_account_freshness), through iam_audit.evaluate.day_verdicts
(stored counts, failing and 'error' verdicts only), so the page shows the same numbers as
the dashboards, muted findings included. Pass rate is pass / (pass + fail) everywhere; errors and
muted findings are always shown as their own counts next to it. Accounts whose newest
evaluated snapshot is older than the newest run are marked stale.
"""

from __future__ import annotations

from copy import copy
from dataclasses import dataclass, field
from datetime import date
from html import escape
from pathlib import Path

from iam_audit.evaluate import day_verdicts
from iam_audit.evaluate.catalogue import control_sort_key, framework_sort_key
from iam_audit.reporting.headline import DEFINITION, FRAMEWORK_ROWS, PASS_RATE, Headline, headline

SEVERITY_ORDER = ("critical", "high", "medium", "low")
TOP_FAILING = 30


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    muted: int = 0

    def add(self, other: Counts) -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.errors += other.errors
        self.muted += other.muted

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.muted

    @property
    def pass_rate(self) -> float | None:
        """pass / (pass + fail), as in aws_policy_scores: errors and muted fails are left out."""
        decided = self.passed + self.failed
        return self.passed / decided if decided else None

    def describe(self) -> str:
        return f"{self.passed} pass, {self.failed} fail, {self.errors} error, {self.muted} muted"

    def side_counts(self) -> str:
        """What the pass rate leaves out, shown next to it."""
        return f"{self.errors} error · {self.muted} muted"


@dataclass
class ReportData:
    snapshot_date: str
    accounts: dict[str, str]                                   # account_id -> name
    frameworks: list[str]
    controls: list[dict]                                       # framework, check_id, title, severity, manual
    cells: dict[tuple[str, str, str], Counts]                  # (framework, check_id, account_id)
    failing: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    muted: list[dict] = field(default_factory=list)
    freshness: dict[str, dict] = field(default_factory=dict)   # account_id -> aws_policy_account_freshness row
    evidence: dict[tuple[str, str], list[dict]] = field(default_factory=dict)  # manual control -> its facts
    warnings: list[str] = field(default_factory=list)          # the run's configuration warnings
    headline: Headline | None = None                           # findings, all frameworks (iam_audit.reporting.headline)
    _by_account_framework: dict | None = field(default=None, init=False, repr=False, compare=False)

    def is_stale(self, account_id: str) -> bool:
        row = self.freshness.get(account_id)
        return row is None or row["is_stale"] is not False

    def account_framework(self, account_id: str, framework: str) -> Counts:
        # summed once for every (account, framework): the pass-rate table asks for each of them
        if self._by_account_framework is None:
            self._by_account_framework = {}
            for (f, _, a), counts in self.cells.items():
                self._by_account_framework.setdefault((a, f), Counts()).add(counts)
        return copy(self._by_account_framework.get((account_id, framework), Counts()))

    def overall(self, framework: str | None = None) -> Counts:
        total = Counts()
        for (f, _, _), counts in self.cells.items():
            if framework in (None, f):
                total.add(counts)
        return total


def _rows(conn, sql: str, params) -> list[dict]:
    cur = conn.execute(sql, params)
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def load_report_data(conn, snapshot_date: date | str) -> ReportData:
    day = str(snapshot_date)
    cells = {
        (framework, check_id, account_id): Counts(passed, failed, errors, muted)
        for framework, check_id, account_id, _, passed, failed, errors, muted in day_verdicts.scores(conn, day)
    }
    names = {r["account_id"]: r["account_name"] or "" for r in _rows(
        conn, "SELECT account_id, account_name FROM iam_stage.accounts WHERE snapshot_date = %s", (day,))}
    accounts = {a: names.get(a, "") for a in sorted({a for (_, _, a) in cells} | set(names))}

    controls = [
        {**r, "manual": r["logic"] is None}
        for r in _rows(conn, "SELECT framework, check_id, title, severity, logic FROM aws_policy_controls", ())
    ]
    known = {(c["framework"], c["check_id"]) for c in controls}
    for framework, check_id, _ in cells:   # verdicts of controls no longer in the catalogue
        if (framework, check_id) not in known:
            known.add((framework, check_id))
            controls.append({"framework": framework, "check_id": check_id, "title": "", "severity": "",
                             "logic": None, "manual": False})
    controls.sort(key=lambda c: (framework_sort_key(c["framework"]), control_sort_key(c["check_id"])))
    frameworks = sorted({c["framework"] for c in controls if not c["manual"]}, key=framework_sort_key)

    names_failing = ("account_id", "resource_id", "resource_type", "severity_rank", "controls", "title", "reason")
    failing = [dict(zip(names_failing, row, strict=True))
               for row in day_verdicts.top_failing(conn, day, TOP_FAILING)]
    for row in failing:
        row["severity"] = SEVERITY_ORDER[min(row.pop("severity_rank"), 3)]

    errors = [{"account_id": a, "reason": r, "controls": c}
              for a, r, c in day_verdicts.errors_by_reason(conn, day)]
    muted = _rows(conn, """
        SELECT account_id, framework, check_id, resource_id, exception_reason, exception_expires_on
        FROM aws_policy_muted_verdicts
        WHERE snapshot_date = %s
        ORDER BY exception_expires_on, account_id, framework, check_id, resource_id""", (day,))
    freshness = day_verdicts.freshness(conn, accounts)
    evidence: dict[tuple[str, str], list[dict]] = {}
    for row in _rows(conn, """
        SELECT framework, check_id, account_id, account_name, subject, detail, attention
        FROM aws_policy_manual_evidence
        WHERE snapshot_date = %s
        ORDER BY framework, check_id, attention DESC, account_id NULLS FIRST, subject""", (day,)):
        evidence.setdefault((row["framework"], row["check_id"]), []).append(row)
    return ReportData(day, accounts, frameworks, controls, cells, failing, errors, muted, freshness, evidence,
                      headline=headline(conn, day))


# ---- rendering ---------------------------------------------------------------------

_CSS = """
:root{--pass:#1a7f37;--fail:#cf222e;--error:#bf8700;--muted:#8250df;--ink:#1f2328;--soft:#59636e;
--line:#d1d9e0;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--ink);background:var(--bg)}
header{background:#0d1117;color:#f0f6fc;padding:24px 32px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#9198a1}
main{max-width:1400px;margin:0 auto;padding:24px 32px 48px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:20px 24px;margin-bottom:24px}
h2{font-size:17px;margin:0 0 12px}
p.note{color:var(--soft);margin:4px 0 12px}
.tiles{display:flex;flex-wrap:wrap;gap:16px;margin-bottom:24px}
.tile{flex:1 1 160px;background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px}
.tile .v{font-size:26px;font-weight:600}
.tile .k{color:var(--soft);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--soft);font-weight:600;background:var(--bg)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{position:relative;height:8px;background:#eaeef2;border-radius:4px;min-width:90px;margin-top:6px}
.bar span{position:absolute;left:0;top:0;bottom:0;border-radius:4px;background:var(--pass)}
.rate{font-weight:600}
.wrap{overflow-x:auto}
table.heat th.acct{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;height:130px;
text-align:left;vertical-align:bottom;padding:6px 4px}
table.heat td.cell{width:34px;min-width:34px;text-align:center;font-size:12px;font-weight:600;color:#fff;
border:2px solid #fff;border-radius:4px;padding:4px 0}
table.heat td.none{background:#eaeef2;color:var(--soft);font-weight:400}
table.heat td.ctl{white-space:nowrap}
table.heat td.title{color:var(--soft);max-width:420px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.legend{display:flex;flex-wrap:wrap;gap:16px;color:var(--soft);font-size:12px;margin:10px 0 0}
.legend i{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:5px;vertical-align:-2px}
.sev{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.sev.critical{background:#82071e}.sev.high{background:var(--fail)}.sev.medium{background:#bc4c00}
.sev.low{background:#6e7781}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
.empty{color:var(--soft);font-style:italic}
.side{color:var(--soft);font-size:11px;white-space:nowrap}
.stale{display:inline-block;padding:1px 8px;border-radius:10px;font-size:11px;font-weight:600;color:#fff;
background:var(--error)}
footer{color:var(--soft);font-size:12px;text-align:center;padding-bottom:24px}
ul.evidence{margin:2px 0 0;padding-left:18px;font-size:12px}
"""


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.0f}%"


def _rate_cell(counts: Counts) -> str:
    width = 0 if counts.pass_rate is None else round(100 * counts.pass_rate)
    return (f'<td><span class="rate">{_pct(counts.pass_rate)}</span> <small class="side">'
            f"{escape(counts.side_counts())}</small>"
            f'<div class="bar" title="{escape(counts.describe())}"><span style="width:{width}%"></span></div></td>')


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], share: float) -> str:
    r, g, bl = (round(x + (y - x) * share) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{g:02x}{bl:02x}"


_GREEN, _RED, _AMBER, _PURPLE = (26, 127, 55), (207, 34, 46), (191, 135, 0), (130, 80, 223)


def cell_colour(counts: Counts) -> str:
    """Green when all pass, to red with the share of fails; amber for errors only; purple for muted only."""
    if counts.failed:
        decided = counts.passed + counts.failed
        return _mix(_GREEN, _RED, 0.35 + 0.65 * counts.failed / decided)
    if counts.errors:
        return _mix(_AMBER, _GREEN, counts.passed / (counts.passed + counts.errors) * 0.5)
    if counts.muted and not counts.passed:
        return _mix(_PURPLE, _GREEN, 0)
    return _mix(_GREEN, _PURPLE, 0.25 if counts.muted else 0)


def _cell_label(counts: Counts) -> str:
    if counts.failed:
        return str(counts.failed)
    if counts.errors:
        return "!"
    return "✓"


def _summary_tiles(data: ReportData) -> str:
    total = data.overall()
    stale = sum(data.is_stale(a) for a in data.accounts)
    if data.headline is None:  # (a report rendered from data without the headline view)
        tiles = [("pass rate", _pct(total.pass_rate)), ("accounts", str(len(data.accounts))),
                 ("failing", str(total.failed)), ("passing", str(total.passed)),
                 ("errors", str(total.errors)), ("muted", str(total.muted)), ("stale accounts", str(stale))]
        note = ""
    else:
        h = data.headline
        tiles = [("open findings", str(h.failing)), ("pass rate of findings", _pct(h.pass_rate)),
                 ("passing findings", str(h.passing)), ("findings in error", str(h.errors)),
                 ("muted findings", str(h.muted)), ("accounts", str(len(data.accounts))),
                 ("stale accounts", str(stale))]
        note = (f'<p class="note">{escape(DEFINITION)}; {escape(PASS_RATE)}. The tables below count '
                f"{escape(FRAMEWORK_ROWS)}: {escape(total.describe())}.</p>")
    return '<div class="tiles">' + "".join(
        f'<div class="tile"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
        for k, v in tiles) + "</div>" + note


def _account_label(data: ReportData, account_id: str) -> str:
    name = data.accounts.get(account_id) or ""
    return f"{account_id} {name}".strip()


def _pass_rates(data: ReportData) -> str:
    head = "".join(f"<th>{escape(f)}</th>" for f in data.frameworks)
    rows = []
    for account_id, name in data.accounts.items():
        cells = "".join(_rate_cell(data.account_framework(account_id, f)) for f in data.frameworks)
        badge = ' <span class="stale">stale</span>' if data.is_stale(account_id) else ""
        rows.append(f"<tr><td><code>{escape(account_id)}</code>{badge}</td><td>{escape(name)}</td>{cells}</tr>")
    overall = "".join(_rate_cell(data.overall(f)) for f in data.frameworks)
    rows.append(f"<tr><th>all accounts</th><th></th>{overall}</tr>")
    return (
        "<section><h2>Pass rate per account and framework</h2>"
        '<p class="note">pass / (pass + fail). Errors (not evaluable) and muted findings are not in the '
        "rate; their counts stand next to it. Hover a bar for all counts.</p>"
        f'<div class="wrap"><table><thead><tr><th>account</th><th>name</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _freshness(data: ReportData) -> str:
    rows = []
    for account_id, name in data.accounts.items():
        row = data.freshness.get(account_id) or {}
        latest = row.get("latest_snapshot_date")
        age = row.get("snapshot_age_days")
        if data.is_stale(account_id):
            state = ('<span class="stale">stale</span> newest evaluated snapshot is older than the newest run'
                     if latest else '<span class="stale">stale</span> never evaluated')
        else:
            state = "current"
        rows.append(
            f"<tr><td><code>{escape(account_id)}</code></td><td>{escape(name)}</td>"
            f"<td>{escape(str(latest) if latest else '–')}</td>"
            f"<td class='num'>{escape('–' if age is None else str(age))}</td>"
            f"<td>{escape(str(row.get('extracted_at') or '–'))}</td><td>{state}</td></tr>")
    newest = next((r.get("latest_run_date") for r in data.freshness.values() if r.get("latest_run_date")), None)
    return (
        "<section><h2>Snapshot age per account</h2>"
        f"<p class='note'>Against the newest run ({escape(str(newest or '–'))}). A stale account's verdicts "
        "are not current: its newest snapshot could not be evaluated (see Errors explained), or it was not "
        "audited since.</p>"
        "<div class='wrap'><table><thead><tr><th>account</th><th>name</th><th>newest evaluated snapshot</th>"
        "<th class='num'>age (days)</th><th>extracted at</th><th>state</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _heat_map(data: ReportData) -> str:
    accounts = list(data.accounts)
    head = "".join(f'<th class="acct" title="{escape(_account_label(data, a))}">{escape(_account_label(data, a))}'
                   "</th>" for a in accounts)
    rows = []
    for control in (c for c in data.controls if not c["manual"]):
        cells = []
        for account_id in accounts:
            counts = data.cells.get((control["framework"], control["check_id"], account_id))
            where = f"{control['framework']} {control['check_id']} in {_account_label(data, account_id)}"
            if counts is None or counts.total == 0:
                cells.append(f'<td class="cell none" title="{escape(where)}: not evaluated">–</td>')
            else:
                cells.append(f'<td class="cell" style="background:{cell_colour(counts)}" '
                             f'title="{escape(where)}: {escape(counts.describe())}">{_cell_label(counts)}</td>')
        rows.append(f'<tr><td class="ctl">{escape(control["framework"])} <b>{escape(control["check_id"])}</b></td>'
                    f'<td class="title" title="{escape(control["title"])}">{escape(control["title"])}</td>'
                    f"{''.join(cells)}</tr>")
    legend = ('<div class="legend"><span><i style="background:#1a7f37"></i>all pass</span>'
              '<span><i style="background:#cf222e"></i>failing (number = fails; redder = larger share)</span>'
              '<span><i style="background:#bf8700"></i>! could not be evaluated</span>'
              '<span><i style="background:#8250df"></i>muted only</span>'
              '<span><i style="background:#eaeef2"></i>not evaluated</span></div>')
    return (
        "<section><h2>Controls × accounts</h2>"
        '<p class="note">Each cell is one control in one account; hover it for pass / fail / error / muted.</p>'
        f'<div class="wrap"><table class="heat"><thead><tr><th>control</th><th>title</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>{legend}</section>"
    )


def _failing(data: ReportData) -> str:
    if not data.failing:
        return "<section><h2>Top failing resources</h2><p class='empty'>No failing resource.</p></section>"
    rows = "".join(
        f'<tr><td><span class="sev {escape(r["severity"])}">{escape(r["severity"])}</span></td>'
        f"<td><code>{escape(r['account_id'])}</code></td><td><code>{escape(r['resource_id'])}</code>"
        f"<br><small>{escape(r['resource_type'] or '')}</small></td>"
        f"<td>{escape(r['controls'])}<br><small>{escape(r['title'] or '')}</small></td>"
        f"<td>{escape(r['reason'])}</td></tr>"
        for r in data.failing)
    return (
        f"<section><h2>Top failing resources</h2><p class='note'>Up to {TOP_FAILING}, most severe first; "
        "one row per resource and check, listing every framework control it fails.</p>"
        "<div class='wrap'><table><thead><tr><th>severity</th><th>account</th><th>resource</th><th>controls</th>"
        f"<th>why</th></tr></thead><tbody>{rows}</tbody></table></div></section>"
    )


def _errors(data: ReportData) -> str:
    intro = ("<p class='note'>An <b>error</b> means the data a control needs could not be collected in that "
             "account (access denied, API not supported, throttled past retries, role not assumable). It is "
             "never counted as a pass: fix the cause and re-run the date.</p>")
    if not data.errors:
        return f"<section><h2>Errors explained</h2>{intro}<p class='empty'>No error in this snapshot.</p></section>"
    rows = "".join(
        f"<tr><td><code>{escape(r['account_id'])}</code> {escape(data.accounts.get(r['account_id'], ''))}</td>"
        f"<td>{escape(r['reason'])}</td><td>{escape(r['controls'])}</td></tr>" for r in data.errors)
    return (f"<section><h2>Errors explained</h2>{intro}<div class='wrap'><table><thead><tr><th>account</th>"
            f"<th>cause</th><th>controls affected</th></tr></thead><tbody>{rows}</tbody></table></div></section>")


def _muted(data: ReportData) -> str:
    if not data.muted:
        return ""
    rows = "".join(
        f"<tr><td>{escape(str(r['exception_expires_on']))}</td><td><code>{escape(r['account_id'])}</code></td>"
        f"<td>{escape(r['framework'])} {escape(r['check_id'])}</td><td><code>{escape(r['resource_id'])}</code></td>"
        f"<td>{escape(r['exception_reason'] or '')}</td></tr>" for r in data.muted)
    return ("<section><h2>Muted findings</h2><p class='note'>Fails accepted by an exception "
            "(aws_policy_exceptions) until its expiry date; they count neither as pass nor as fail.</p>"
            "<div class='wrap'><table><thead><tr><th>expires on</th><th>account</th><th>control</th>"
            f"<th>resource</th><th>exception reason</th></tr></thead><tbody>{rows}</tbody></table></div></section>")


EVIDENCE_SHOWN = 8  # facts per manual control in the report; the view has them all


def _manual(data: ReportData) -> str:
    manual = [c for c in data.controls if c["manual"]]
    if not manual:
        return ""
    rows = "".join(f"<tr><td>{escape(c['framework'])}</td><td><b>{escape(c['check_id'])}</b></td>"
                   f"<td>{escape(c['title'])}</td><td>{_evidence(data.evidence.get((c['framework'], c['check_id'])))}"
                   "</td></tr>" for c in manual)
    return ("<section><h2>Manual controls</h2><p class='note'>These need a person's assessment and have no "
            "automated verdict. Where the organisation facts their audit reads were collected, they are shown "
            "beside them, those needing a look first (aws_policy_manual_evidence).</p><div class='wrap'><table>"
            "<thead><tr><th>framework</th><th>control</th><th>title</th><th>evidence</th></tr>"
            f"</thead><tbody>{rows}</tbody></table></div></section>")


def _evidence(facts: list[dict] | None, shown: int = EVIDENCE_SHOWN) -> str:
    if not facts:
        return ""
    flagged = sum(1 for f in facts if f["attention"])
    items = "".join(
        f"<li>{'<b>look:</b> ' if f['attention'] else ''}"
        f"{escape(f['account_id'] + ' ' + (f['account_name'] or '') if f['account_id'] else 'organisation')}: "
        f"{escape(f['subject'])}: {escape(f['detail'])}</li>" for f in facts[:shown])
    more = f"<li class='side'>... {len(facts) - shown} more</li>" if len(facts) > shown else ""
    return f"<span class='side'>{flagged} of {len(facts)} need a look</span><ul class='evidence'>{items}{more}</ul>"


def _warnings(data: ReportData) -> str:
    if not data.warnings:
        return ""
    items = "".join(f"<li>{escape(w)}</li>" for w in data.warnings)
    return f"<section class='warnings'><h2>Configuration warnings</h2><ul>{items}</ul></section>"


def render_report(data: ReportData) -> str:
    title = f"IAM compliance report {data.snapshot_date}"
    frameworks = ", ".join(data.frameworks) or "no framework evaluated"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>CIS AWS Foundations Benchmark, IAM controls · {escape(frameworks)}"
        f" · {len(data.accounts)} account(s)</p></header><main>"
        f"{_warnings(data)}{_summary_tiles(data)}{_pass_rates(data)}{_freshness(data)}{_heat_map(data)}{_failing(data)}{_errors(data)}"
        f"{_muted(data)}{_manual(data)}</main>"
        f"<footer>Generated from aws_policy_results (snapshot {escape(data.snapshot_date)}).</footer>"
        "</body></html>\n"
    )


def build_report_html(conn, snapshot_date: date | str, warnings=()) -> str:
    """The report of one snapshot as a self-contained HTML page, with the run's configuration warnings."""
    data = load_report_data(conn, snapshot_date)
    data.warnings = list(warnings)
    return render_report(data)


def write_report(conn, snapshot_date: date | str, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report_html(conn, snapshot_date), encoding="utf-8")
    return path
