"""The Airflow UI in a real browser: the grid's account labels and the Compliance page.

Starts the embedded services (own state dir), runs the DAG once with `airflow dags test`,
serves the UI with `airflow api-server` (the Compliance page reading through its own
`compliance_reader` connection), and drives Debian's Chromium through Playwright, at
1280, 1440 and 1920 px wide. Saves docs/ui-grid.png and docs/ui-compliance.png. Skips when
Chromium or Playwright is missing (`make test-ui` installs both).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.browser import browser_page, require_browser, stop_group, wait_http

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("IAM_AUDIT_UI_TEST_STATE", PROJECT_ROOT / ".devenv" / "ui-test"))
DOCS_DIR = PROJECT_ROOT / "docs"
DAG_ID = "aws_iam_cis"

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def airflow_ui():
    """Embedded services, one finished DAG run, and the API server on a free port: yields (url, run_id, manifest)."""
    require_browser("make test-ui")
    from iam_audit_dev.devenv import stack as stack_mod
    from iam_audit_dev.devenv.runner import migrate, run_dag
    from iam_audit_dev.emulator.process import free_port

    shutil.rmtree(STATE_DIR / "airflow", ignore_errors=True)
    stack, manifest = stack_mod.up(state_dir=STATE_DIR, accounts=2, users=4)
    api_proc = None
    try:
        # A fresh compliance database: the page must show this run only.
        with stack.postgres.connect("postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{stack.database}" WITH (FORCE)')
        stack.postgres.create_database(stack.database)
        port = free_port()
        env = {
            **stack.airflow_env(airflow_home=STATE_DIR / "airflow"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": "ui-test-secret-not-for-production",
        }
        migrate(env)
        result = run_dag(env, log_file=STATE_DIR / "dag-run.log", progress=None)
        # The UI is under test, not the checks: every account must be extracted and the run finished.
        assert result.state in ("success", "failed"), f"DAG run did not finish: see {result.log_file}"
        failed_extracts = [t for t in result.failed_tasks if t.startswith(("extract_account", "load_staging"))]
        assert not failed_extracts, f"DAG run {result.run_id}: {failed_extracts} failed; see {result.log_file}"
        # The page's own login role, with only the database role compliance_reader the run created.
        with stack.postgres.connect(stack.database, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'ui_test_page'").fetchone():
                conn.execute("CREATE ROLE ui_test_page LOGIN")
            conn.execute("GRANT compliance_reader TO ui_test_page")
        env["AIRFLOW_CONN_COMPLIANCE_READER"] = json.dumps(
            {"conn_type": "postgres", "host": stack.postgres.socket_dir, "port": stack.postgres.port,
             "login": "ui_test_page", "schema": stack.database})
        log = STATE_DIR / "api-server.log"
        with open(log, "w") as out:
            api_proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("airflow")), "api-server", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", "1"],
                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/api/v2/monitor/health", api_proc, log, "airflow api-server", timeout=120, interval=0.5)
        yield url, result.run_id, manifest
    finally:
        if api_proc is not None:
            stop_group(api_proc)
        stack_mod.down(STATE_DIR)


@pytest.fixture(scope="module")
def page(airflow_ui):
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)  # a shared, loaded machine renders the UI slowly
    url, _, _ = airflow_ui
    with browser_page(url, 1440, 900, timeout_ms=30_000) as page:
        # Simple auth manager with all admins: visiting the login page issues the session cookie.
        page.goto("/")
        page.wait_for_load_state("networkidle")
        yield page


def _account_labels(manifest: dict) -> list[str]:
    return [f"{a['id']} {a['name']}" for a in manifest["accounts"]]


def test_grid_shows_mapped_extract_tasks_with_account_labels(airflow_ui, page):
    _, run_id, manifest = airflow_ui
    from playwright.sync_api import expect

    page.goto(f"/dags/{DAG_ID}/runs/{run_id}/tasks/extract_account/mapped")
    first = page.get_by_text(_account_labels(manifest)[0], exact=False).first
    try:
        # the labels themselves are awaited: the UI's polling may keep the network from ever going idle
        expect(first).to_be_visible(timeout=60_000)
    except AssertionError:
        # On a heavily loaded machine the UI's first render can stall with empty cells: load it once more.
        page.reload()
    for label in _account_labels(manifest):
        expect(page.get_by_text(label, exact=False).first).to_be_visible()
    expect(page.get_by_text("extract_account").first).to_be_visible()
    DOCS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS_DIR / "ui-grid.png"))


def _compliance_frame(page):
    page.goto("/plugin/compliance")
    frame_el = page.wait_for_selector("iframe")
    frame = frame_el.content_frame()
    frame.wait_for_selector("#scores")
    return frame


# What the layout must hold at each width: nothing wider than the window (top document and the
# page's frame), the scores table whole (its last column, iam_hygiene, inside the frame), dates
# on one line, run links on at most two lines.
LAYOUT = """() => {
  const d = document.documentElement, wrap = document.querySelector('#scores').parentElement;
  const lines = el => { const r = el.getBoundingClientRect(); const lh = parseFloat(getComputedStyle(el).lineHeight);
                        return Math.round(r.height / lh); };
  const last = [...document.querySelectorAll('#scores thead th')].pop();
  return {
    scrollWidth: d.scrollWidth, clientWidth: d.clientWidth,
    scoresWidth: wrap.scrollWidth, scoresBox: wrap.clientWidth,
    lastHeader: last.textContent, lastHeaderRight: last.getBoundingClientRect().right,
    nowrapMaxLines: Math.max(0, ...[...document.querySelectorAll('.nowrap')].map(el => el.getClientRects().length)),
    runLinkMaxLines: Math.max(0, ...[...document.querySelectorAll('a.run')].map(lines)),
    findingRows: document.querySelectorAll('#findings tr.finding').length,
  };
}"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_compliance_page_layout(airflow_ui, page, width):
    page.set_viewport_size({"width": width, "height": 1000})
    frame = _compliance_frame(page)
    top = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert top[0] <= top[1], f"the UI overflows horizontally at {width} px: {top}"
    m = frame.evaluate(LAYOUT)
    assert m["scrollWidth"] <= m["clientWidth"], f"the page overflows horizontally at {width} px: {m}"
    assert m["scoresWidth"] <= m["scoresBox"], f"the scores table is cut at {width} px: {m}"
    assert m["lastHeader"] == "iam_hygiene" and m["lastHeaderRight"] <= m["clientWidth"], m
    assert m["nowrapMaxLines"] == 1 and 1 <= m["runLinkMaxLines"] <= 2, m
    assert m["findingRows"] > 0, m


def test_compliance_trend_series_are_distinct(airflow_ui, page):
    page.set_viewport_size({"width": 1440, "height": 1000})
    frame = _compliance_frame(page)
    series = frame.evaluate("""() => [...document.querySelectorAll('#trend-chart g.series')].map(g => ({
        framework: g.dataset.framework,
        styles: [...g.querySelectorAll('polyline, circle')].map(el =>
            [getComputedStyle(el).stroke !== 'none' ? getComputedStyle(el).stroke : getComputedStyle(el).fill,
             el.getAttribute('stroke-dasharray') || g.dataset.dash || ''])}))""")
    frameworks = {s["framework"] for s in series}
    assert len(series) == len(frameworks) >= 11, series  # ten CIS versions and iam_hygiene
    styles = []
    for s in series:
        assert s["styles"], s
        # a series draws in one colour; its line (if any) carries its dash pattern
        colours = {c for c, _ in s["styles"]}
        assert len(colours) == 1, s
        styles.append((colours.pop(), max(d for _, d in s["styles"])))
    assert len(set(styles)) == len(styles), f"series share a colour and dash pattern: {styles}"


def _finding_rows(frame) -> list[dict]:
    return frame.locator("#findings tr.finding").evaluate_all(
        "rows => rows.map(r => ({...r.dataset, numbers: r.querySelector('.numbers').textContent}))")


def test_compliance_page_shows_pass_rates_and_failing_findings(airflow_ui, page):
    url, run_id, manifest = airflow_ui
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1440, "height": 1100})
    page.goto("/plugin/compliance")
    frame = page.frame_locator("iframe")
    scores = frame.locator("#scores")
    expect(scores).to_be_visible()
    expect(frame.locator("#connection-warning")).to_have_count(0)  # read through compliance_reader
    for account in manifest["accounts"]:
        row = scores.locator(f'tr[data-account="{account["id"]}"]')
        expect(row).to_contain_text(account["name"])
        expect(row.locator("td.rate").first).to_contain_text("%")
        expect(row.locator("td.fresh")).to_contain_text("current")
    expect(scores).to_contain_text("CIS v1.2.0")
    expect(scores).to_contain_text("CIS v6.0.0")
    expect(scores).to_contain_text("CIS v7.0.0")
    heads = scores.locator("thead th.fw").all_inner_texts()
    assert heads.index(next(h for h in heads if "v7.0.0" in h)) == heads.index(
        next(h for h in heads if "v6.0.0" in h)) + 1, heads  # versions sort as numbers
    # the org-wide headline counts every account; one page holds them all here
    accounts_shown = scores.locator("tr.account").count()
    assert accounts_shown >= len(manifest["accounts"])
    expect(frame.locator("#headline b")).to_have_text(str(accounts_shown))
    expect(frame.locator("#accounts-pager-top")).to_contain_text("page 1 of 1")
    expect(frame.locator("#totals tr[data-framework]")).to_have_count(scores.locator("thead th.fw").count())
    # Worst first, then oldest first; one row per problem (control logic, account, resource) carrying
    # the numbers of every framework it violates.
    rows = _finding_rows(frame)
    order = ["critical", "high", "medium", "low"]
    ranks = [(order.index(r["severity"]), r["since"]) for r in rows]
    assert rows and ranks == sorted(ranks), ranks
    problems = [(r["logic"], r["account"], r["resource"]) for r in rows]
    assert len(set(problems)) == len(problems), problems
    for r in rows:
        frameworks = r["frameworks"].split()
        assert frameworks, r
        for framework in frameworks:
            assert framework.removeprefix("cis_") in r["numbers"], r
    assert any(len(r["frameworks"].split()) > 1 for r in rows), "no problem shown with several framework numbers"
    finding = frame.locator("#findings tr.finding").first
    expect(finding).to_be_visible()
    link = finding.locator(f'a.run[title="{run_id}"]')
    expect(link).to_be_visible()
    expect(frame.locator("#trend-chart")).to_be_visible()
    DOCS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS_DIR / "ui-compliance.png"))

    # Filters through the form: by severity; then by framework and account together.
    inner = page.wait_for_selector("iframe").content_frame()
    frame.locator('#filters select[name="severity"]').select_option("high")
    frame.locator('#filters button[type="submit"]').click()
    inner.wait_for_url(re.compile(r"severity=high"))
    expect(frame.locator("#findings tr.finding").first).to_have_attribute("data-severity", "high")
    assert {r["severity"] for r in _finding_rows(frame)} == {"high"}

    framework, account = "cis_v1.2.0", manifest["accounts"][0]["id"]
    expected = {(r["logic"], r["resource"]) for r in rows
                if r["account"] == account and framework in r["frameworks"].split()}
    assert expected, f"the fixture must fail something of {framework} in account {account}"
    frame.locator('#filters select[name="severity"]').select_option("")
    frame.locator('#filters select[name="framework"]').select_option(framework)
    frame.locator('#filters input[name="account"]').fill(account)
    frame.locator('#filters button[type="submit"]').click()
    inner.wait_for_url(re.compile(rf"framework={re.escape(framework)}&account={account}&severity=&sort=pass_rate$"))
    expect(scores.locator("tr.account")).to_have_count(1)
    expect(scores.locator(f'tr[data-account="{account}"]')).to_be_visible()
    expect(frame.locator("#findings tr.finding").first).to_be_visible()
    filtered = _finding_rows(frame)
    assert {r["account"] for r in filtered} == {account}
    assert all(framework in r["frameworks"].split() for r in filtered), filtered
    assert expected <= {(r["logic"], r["resource"]) for r in filtered}

    # The run link leaves the frame and opens that run in the UI.
    link = frame.locator(f'#findings a.run[title="{run_id}"]').first
    link.click()
    page.wait_for_url(f"**/dags/{DAG_ID}/runs/**")
    assert run_id in urllib.request.unquote(page.url)
    expect(page.get_by_text(run_id).first).to_be_visible()


def _tops(frame) -> dict:
    """The vertical position of each part of the page, in document order of what a person reads first."""
    return frame.evaluate("""() => Object.fromEntries(['#findings-headline', '#filters', '#open-findings', '#totals',
        '#scores'].map(s => [s, document.querySelector(s).getBoundingClientRect().top + window.scrollY]))""")


def _top_of_page(frame) -> dict:
    return frame.evaluate("""() => ({
        headline: document.querySelector('#findings-headline .headline').textContent,
        first: (r => r && [r.dataset.severity, r.dataset.logic, r.dataset.account, r.dataset.resource])(
            document.querySelector('#findings tr.finding')),
        firstTop: (r => r ? r.getBoundingClientRect().top + window.scrollY : null)(
            document.querySelector('#findings tr.finding')),
        viewport: window.innerHeight})""")


def test_compliance_page_leads_with_the_headline_and_filters_change_the_top(airflow_ui, page):
    """The headline, the filters and the worst open findings come before the framework and account
    tables; choosing a severity or a framework changes the headline and the first finding, on top."""
    page.set_viewport_size({"width": 1440, "height": 1000})
    frame = _compliance_frame(page)
    tops = _tops(frame)
    assert tops["#findings-headline"] < tops["#filters"] < tops["#open-findings"] < tops["#totals"] \
        < tops["#scores"], tops
    before = _top_of_page(frame)
    assert before["first"] and before["firstTop"] < before["viewport"], before  # a finding without scrolling
    rows = _finding_rows(frame)
    other = next(s for s in ("low", "medium", "high", "critical") if s != before["first"][0]
                 and any(r["severity"] == s for r in rows))
    frame.locator('#filters select[name="severity"]').select_option(other)
    frame.locator('#filters button[type="submit"]').click()
    frame.wait_for_url(re.compile(rf"severity={other}"))
    frame.wait_for_selector("#findings-headline")
    after = _top_of_page(frame)
    assert after["headline"] != before["headline"] and f"severity {other}" in after["headline"], (before, after)
    assert after["first"][0] == other and after["first"] != before["first"], (before, after)
    # a framework: the headline names it and counts that framework's findings only
    frame.locator('#filters select[name="severity"]').select_option("")
    frame.locator('#filters select[name="framework"]').select_option("iam_hygiene")
    frame.locator('#filters button[type="submit"]').click()
    frame.wait_for_url(re.compile(r"framework=iam_hygiene"))
    frame.wait_for_selector("#findings-headline")
    hygiene = _top_of_page(frame)
    assert "iam_hygiene" in hygiene["headline"] and hygiene["headline"] != before["headline"], hygiene
    assert all("iam_hygiene" in r["frameworks"].split() for r in _finding_rows(frame))


def test_the_runs_report_opens_from_the_compliance_page(airflow_ui, page):
    """The headline links the HTML report the run stored in S3; it opens in the whole window, the
    failing resources before the heat map, account ids on one line."""
    _, _, manifest = airflow_ui
    page.set_viewport_size({"width": 1440, "height": 1000})
    frame = _compliance_frame(page)
    frame.locator("#report-link").click()
    page.wait_for_url(re.compile(r"/compliance/report/\d{4}-\d\d-\d\d$"))
    assert page.title().startswith("IAM compliance report")
    m = page.evaluate("""() => ({
        failing: document.querySelector('#top-failing').getBoundingClientRect().top,
        heat: document.querySelector('#heat-map').getBoundingClientRect().top,
        ids: [...document.querySelectorAll('code.acct')].map(el => el.getClientRects().length),
        text: document.body.textContent})""")
    assert m["failing"] < m["heat"], m
    assert m["ids"] and max(m["ids"]) == 1, m["ids"]
    for account in manifest["accounts"]:
        assert account["id"] in m["text"] and account["name"] in m["text"]
