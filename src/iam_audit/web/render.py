"""The page's HTML: Jinja2 templates (web/templates/, autoescaped) over the data of iam_audit.web.queries.

This module prepares what the templates cannot say simply (links with the request's parameters, the trend
chart's coordinates, a run id on two lines) and gives them the vocabulary's words; the markup is theirs.
"""

import html
import re
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from iam_audit import templating, vocabulary
from iam_audit.web import DAG_ID
from iam_audit.web.params import PAGING_DEFAULTS, SORT_LABELS
from iam_audit.web.queries import ALERTS_SHOWN, TREND_SNAPSHOTS

STATIC = "iam_audit.web"

# Ten well-separated hues (Tableau 10), then the same hues again with dash patterns: every
# series gets its own (colour, dash) pair, and lines stay apart where colours are close.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#4b4b4b")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
TREND_BOX = {"width": 720, "height": 200, "pad": 34}


def series_style(index: int) -> tuple[str, str]:
    """(colour, stroke-dasharray) of the index-th series: distinct for len(PALETTE) * len(DASHES) series,
    then generated hues (golden angle) with the dash patterns."""
    if index < len(PALETTE) * len(DASHES):
        return PALETTE[index % len(PALETTE)], DASHES[index // len(PALETTE)]
    hue = (index * 137.508) % 360
    return f"hsl({hue:.1f}, 65%, {40 + 12 * (index % 2)}%)", DASHES[index % len(DASHES)]


def run_parts(run_id: str) -> tuple[str, str]:
    """A run id as its kind and its time ('scheduled', '2026-11-28 00:00'), for two unwrapped lines."""
    kind, sep, rest = run_id.partition("__")
    when = rest if sep else ""
    match = re.match(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)", when)
    return kind, (f"{match[1]} {match[2]}" if match else when)


def quoted(text: str) -> Markup:
    """Text escaped by the standard library (a quote as &#x27;), as the page's messages always were."""
    return Markup(html.escape(text))


def age(days: int | None) -> str:
    if days is None:
        return ""
    return "current" if days == 0 else "1 day old" if days == 1 else f"{days} days old"


def open_for(days: int | None) -> str:
    if days is None:
        return ""
    return "new in the latest snapshot" if days == 0 else f"open {days} day{'s' if days != 1 else ''}"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def page_href(data: dict[str, Any], **changes: Any) -> str:
    """A link to this page with the request's filters and paging, some of them changed; defaults left out."""
    query = {**data["filters"], **{k: v for k, v in data["paging"].items() if k in PAGING_DEFAULTS}, **changes}
    query = {k: v for k, v in query.items() if v not in ("", None) and PAGING_DEFAULTS.get(k) != v}
    return "?" + urlencode(query) if query else "./"


def trend_chart(trend: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The SVG's geometry: one series per framework (points of its pass rate), grid lines, axis dates."""
    if not trend:
        return None
    width, height, pad = TREND_BOX["width"], TREND_BOX["height"], TREND_BOX["pad"]
    dates = sorted({t["snapshot_date"] for t in trend})
    frameworks = sorted({t["framework"] for t in trend}, key=vocabulary.framework_sort_key)
    step = (width - 2 * pad) / max(len(dates) - 1, 1)
    y_of = lambda pct: height - pad - (height - 2 * pad) * pct / 100  # noqa: E731
    series = []
    for i, framework in enumerate(frameworks):
        colour, dash = series_style(i)
        points = [(pad + step * dates.index(t["snapshot_date"]) if len(dates) > 1 else width / 2, y_of(t["pass_rate"]))
                  for t in trend if t["framework"] == framework and t["pass_rate"] is not None]
        series.append({"framework": framework, "label": vocabulary.framework_label(framework), "colour": colour,
                       "dash": dash, "points": [(f"{x:.1f}", f"{y:.1f}") for x, y in points],
                       "path": " ".join(f"{x:.1f},{y:.1f}" for x, y in points)})
    grid = [{"pct": pct, "y": f"{y_of(pct):.1f}", "label_y": f"{y_of(pct) + 4:.1f}"} for pct in (0, 50, 100)]
    return {**TREND_BOX, "series": series, "grid": grid, "dates": dates}


def trend_rows(trend: list[dict[str, Any]]) -> tuple[list[str], list[tuple[str, list[dict | None]]]]:
    """(frameworks, [(date, [that date's point of each framework or None])]), newest date first."""
    frameworks = sorted({t["framework"] for t in trend}, key=vocabulary.framework_sort_key)
    by_date: dict[str, dict[str, Any]] = {}
    for t in trend:
        by_date.setdefault(t["snapshot_date"], {})[t["framework"]] = t
    return frameworks, [(day, [by_date[day].get(f) for f in frameworks]) for day in sorted(by_date, reverse=True)]


@cache
def environment() -> Environment:
    env = templating.environment(PackageLoader("iam_audit.web", "templates"))
    env.filters.update(quoted=quoted, age=age, open_for=open_for, percent=percent,
                       tone=vocabulary.rate_tone, label=vocabulary.framework_label)
    env.globals.update(DAG_ID=DAG_ID, SEVERITY_OPTIONS=[(s, s) for s in vocabulary.SEVERITIES], SORT_LABELS=SORT_LABELS,
                       PAGING_DEFAULTS=PAGING_DEFAULTS, TREND_SNAPSHOTS=TREND_SNAPSHOTS, ALERTS_SHOWN=ALERTS_SHOWN,
                       ALL=vocabulary.ALL, DEFINITION=vocabulary.DEFINITION, PASS_RATE=vocabulary.PASS_RATE,
                       RATE_FORMULA=vocabulary.RATE_FORMULA, run_parts=run_parts)
    return env


def static_bytes(name: str) -> bytes:
    """A file of web/static/ (package data)."""
    return files(STATIC).joinpath("static", name).read_bytes()


def static_text(name: str) -> str:
    """The page's style or script, inlined: the page is one document in the UI's frame."""
    try:
        return static_bytes(name).decode("utf-8")
    except OSError:
        return ""


def render_page(data: dict[str, Any] | None, error: str | None = None, warning: str | None = None) -> str:
    context: dict[str, Any] = {"data": data, "error": error, "warning": warning or (data or {}).get("warning"),
                               "css": Markup(static_text("style.css")), "script": Markup(static_text("page.js"))}
    if data and data.get("available") and not data.get("missing_views"):
        scores: dict[str, dict[str, Any]] = {}
        for s in data["scores"]:
            scores.setdefault(s["account_id"], {})[s["framework"]] = s
        frameworks, rows = trend_rows(data["trend"])
        context.update(
            href=lambda **changes: page_href(data, **changes), scores=scores, trend=trend_chart(data["trend"]),
            trend_frameworks=frameworks, trend_by_date=rows,
            framework_options=[(f, vocabulary.framework_label(f)) for f in data["catalogue_frameworks"]],
            chosen={**data["filters"], "sort": data["paging"].get("sort")},
            cleared=bool(data["filters"]) or page_href(data) != "./")
    return environment().get_template("compliance.html").render(context)
