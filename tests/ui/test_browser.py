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
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("IAM_AUDIT_UI_TEST_STATE", PROJECT_ROOT / ".devenv" / "ui-test"))
DOCS_DIR = PROJECT_ROOT / "docs"
CHROMIUM = os.environ.get("IAM_AUDIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]
DAG_ID = "aws_iam_cis"

pytestmark = pytest.mark.ui


def _require_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (make test-ui installs Debian's chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Python package playwright is not installed (make test-ui installs it)")


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow api-server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - local URL
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the process group we started (api-server forks workers)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def airflow_ui():
    """Embedded services, one finished DAG run, and the API server on a free port: yields (url, run_id, manifest)."""
    _require_browser()
    from iam_audit.devenv import stack as stack_mod
    from iam_audit.devenv.runner import migrate, run_dag
    from iam_audit.emulator.process import free_port

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
            {"conn_type": "postgres", "host": stack.postgres.socket_dir, "login": "ui_test_page",
             "schema": stack.database})
        log = STATE_DIR / "api-server.log"
        with open(log, "w") as out:
            api_proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("airflow")), "api-server", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", "1"],
                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/api/v2/monitor/health", api_proc, log)
        yield url, result.run_id, manifest
    finally:
        if api_proc is not None:
            _stop(api_proc)
        stack_mod.down(STATE_DIR)


@pytest.fixture(scope="module")
def page(airflow_ui):
    from playwright.sync_api import sync_playwright

    url, _, _ = airflow_ui
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=url)
        context.set_default_timeout(30_000)
        page = context.new_page()
        # Simple auth manager with all admins: visiting the login page issues the session cookie.
        page.goto("/")
        page.wait_for_load_state("networkidle")
        yield page
        context.close()
        browser.close()


def _account_labels(manifest: dict) -> list[str]:
    return [f"{a['id']} {a['name']}" for a in manifest["accounts"]]


def test_grid_shows_mapped_extract_tasks_with_account_labels(airflow_ui, page):
    _, run_id, manifest = airflow_ui
    from playwright.sync_api import expect

    page.goto(f"/dags/{DAG_ID}/runs/{run_id}/tasks/extract_account/mapped")
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
    assert len(series) == len(frameworks) >= 10, series  # nine CIS versions and iam_hygiene
    styles = []
    for s in series:
        assert s["styles"], s
        # a series draws in one colour; its line (if any) carries its dash pattern
        colours = {c for c, _ in s["styles"]}
        assert len(colours) == 1, s
        styles.append((colours.pop(), max(d for _, d in s["styles"])))
    assert len(set(styles)) == len(styles), f"series share a colour and dash pattern: {styles}"


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
    # worst first: severities never increase down the list
    severities = frame.locator("#findings tr.finding").evaluate_all("rows => rows.map(r => r.dataset.severity)")
    order = ["critical", "high", "medium", "low"]
    assert severities and [order.index(s) for s in severities] == sorted(order.index(s) for s in severities)
    finding = frame.locator("#findings tr.finding").first
    expect(finding).to_be_visible()
    link = finding.locator(f'a.run[title="{run_id}"]')
    expect(link).to_be_visible()
    expect(frame.locator("#trend-chart")).to_be_visible()
    DOCS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS_DIR / "ui-compliance.png"))

    # Filters: by severity, through the form.
    frame.locator('#filters select[name="severity"]').select_option("high")
    frame.locator('#filters button[type="submit"]').click()
    expect(frame.locator("#findings tr.finding").first).to_have_attribute("data-severity", "high")
    assert set(frame.locator("#findings tr.finding").evaluate_all("rows => rows.map(r => r.dataset.severity)")) \
        == {"high"}

    # The run link leaves the frame and opens that run in the UI.
    link = frame.locator(f'#findings a.run[title="{run_id}"]').first
    link.click()
    page.wait_for_url(f"**/dags/{DAG_ID}/runs/**")
    assert run_id in urllib.request.unquote(page.url)
    expect(page.get_by_text(run_id).first).to_be_visible()
