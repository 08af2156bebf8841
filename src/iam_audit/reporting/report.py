"""A self-contained HTML compliance report of one snapshot (inline CSS, no script, no external link),
rendered from templates/report.html (Jinja2, autoescaped).

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
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader

from iam_audit import templating
from iam_audit.evaluate import day_verdicts
from iam_audit.paths import TEMPLATES_DIR
from iam_audit.reporting.headline import Headline, headline
from iam_audit.vocabulary import (
    DEFINITION,
    FRAMEWORK_ROWS,
    PASS_RATE,
    RATE_TONES,
    SEVERITIES,
    TONE_COLOURS,
    control_sort_key,
    framework_numbers,
    framework_sort_key,
    pass_ratio,
    rate_tone,
    severity_rank,
)

SEVERITY_ORDER = SEVERITIES
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
        return pass_ratio(self.passed, self.failed)

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

EVIDENCE_SHOWN = 8  # facts per manual control in the report; the view has them all
# Up to this many accounts the heat map has one column per account; with more, one row per account
# (full names, never clipped) and one column per control logic.
ACCOUNTS_AS_COLUMNS = 8
ERROR_COLOUR, MUTED_COLOUR, NONE_COLOUR = "#bf8700", "#8250df", "#eaeef2"


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.0f}%"


def _tone(counts: Counts) -> str:
    """The rate's tone (iam_audit.vocabulary thresholds): 'bad', 'warn', 'good', or '' without a rate."""
    return rate_tone(None if counts.pass_rate is None else 100 * counts.pass_rate)


def cell_colour(counts: Counts) -> str:
    """By the pass rate's threshold (red, amber, green: iam_audit.vocabulary); ochre for errors only,
    purple for muted only, grey when nothing was evaluated."""
    if counts.passed or counts.failed:
        return TONE_COLOURS[_tone(counts)]
    if counts.errors:
        return ERROR_COLOUR
    if counts.muted:
        return MUTED_COLOUR
    return NONE_COLOUR


def _cell_label(counts: Counts) -> str:
    if counts.failed:
        return str(counts.failed)
    if counts.errors:
        return "!"
    return "✓"


def _account_label(data: ReportData, account_id: str) -> str:
    name = data.accounts.get(account_id) or ""
    return f"{account_id} {name}".strip()


def heat_map(data: ReportData) -> dict:
    """One row per control logic (its framework numbers in one cell), one cell per account: the counts
    of the logic's worst framework version there (most fails, then most errors), every version's counts
    in the cell's title."""
    logics: dict[str, dict] = {}
    for control in data.controls:
        if control["manual"]:
            continue
        key = control.get("logic") or f"{control['framework']} {control['check_id']}"
        logic = logics.setdefault(key, {"logic": key, "controls": [], "severity": control.get("severity") or "",
                                        "title": ""})
        logic["controls"].append(control)
    rows = []
    for logic in logics.values():
        controls = logic["controls"]
        newest = max(controls, key=lambda c: (c["framework"].startswith("cis_"), framework_sort_key(c["framework"])))
        cells = {}
        for account_id in data.accounts:
            found = [(c, data.cells[c["framework"], c["check_id"], account_id]) for c in controls
                     if (c["framework"], c["check_id"], account_id) in data.cells]
            found = [(c, n) for c, n in found if n.total]
            where = _account_label(data, account_id)
            if not found:
                cells[account_id] = {"colour": NONE_COLOUR, "label": "–", "none": True,
                                     "title": f"{logic['logic']} in {where}: not evaluated"}
                continue
            worst = max(found, key=lambda f: (f[1].failed, f[1].errors))[1]
            cells[account_id] = {
                "colour": cell_colour(worst), "label": _cell_label(worst), "none": False,
                "title": "\n".join(f"{c['framework']} {c['check_id']} in {where}: {n.describe()}" for c, n in found)}
        rows.append({"logic": logic["logic"], "title": newest["title"], "severity": logic["severity"],
                     "numbers": framework_numbers([(c["framework"], c["check_id"]) for c in controls]),
                     "cells": cells})
    rows.sort(key=lambda r: (severity_rank(r["severity"]), r["numbers"]))
    return {"rows": rows, "accounts_as_rows": len(data.accounts) > ACCOUNTS_AS_COLUMNS}


def _freshness_rows(data: ReportData) -> list[dict]:
    rows = []
    for account_id, name in data.accounts.items():
        row = data.freshness.get(account_id) or {}
        rows.append({"account_id": account_id, "name": name, "latest": row.get("latest_snapshot_date"),
                     "age": row.get("snapshot_age_days"), "extracted_at": row.get("extracted_at"),
                     "stale": data.is_stale(account_id)})
    return rows


def _rate_cell(counts: Counts) -> dict:
    return {"pct": _pct(counts.pass_rate), "side": counts.side_counts(), "describe": counts.describe(),
            "width": 0 if counts.pass_rate is None else round(100 * counts.pass_rate), "tone": _tone(counts)}


@cache
def _environment() -> Environment:
    return templating.environment(FileSystemLoader(TEMPLATES_DIR))


def render_report(data: ReportData) -> str:
    total = data.overall()
    newest = next((r.get("latest_run_date") for r in data.freshness.values() if r.get("latest_run_date")), None)
    return _environment().get_template("report.html").render(
        data=data, title=f"IAM compliance report {data.snapshot_date}", total=total,
        frameworks=", ".join(data.frameworks) or "no framework evaluated",
        stale_count=sum(data.is_stale(a) for a in data.accounts), pct=_pct,
        definition=DEFINITION, pass_rate_words=PASS_RATE, framework_rows=FRAMEWORK_ROWS, top_failing=TOP_FAILING,
        rates=[{"account_id": a, "name": n, "stale": data.is_stale(a),
                "cells": [_rate_cell(data.account_framework(a, f)) for f in data.frameworks]}
               for a, n in data.accounts.items()],
        overall=[_rate_cell(data.overall(f)) for f in data.frameworks],
        freshness=_freshness_rows(data), newest_run=newest, heat=heat_map(data),
        manual=[c for c in data.controls if c["manual"]], evidence_shown=EVIDENCE_SHOWN,
        tone_colours=TONE_COLOURS, rate_tones=RATE_TONES, error_colour=ERROR_COLOUR, muted_colour=MUTED_COLOUR,
        none_colour=NONE_COLOUR)


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
