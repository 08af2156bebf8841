"""The Airflow UI in a real browser: the grid's account labels and the Compliance page.

Starts the embedded services (own state dir), runs the DAG once with `airflow dags test`,
serves the UI with `airflow api-server`, and drives Debian's Chromium through Playwright.
Saves docs/ui-grid.png and docs/ui-compliance.png. Skips when Chromium or Playwright is
missing (`make test-ui` installs both).
"""

from __future__ import annotations

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


def test_compliance_page_shows_pass_rates_and_failing_findings(airflow_ui, page):
    url, run_id, manifest = airflow_ui
    from playwright.sync_api import expect

    page.goto("/plugin/compliance")
    frame = page.frame_locator("iframe")
    scores = frame.locator("#scores")
    expect(scores).to_be_visible()
    for account in manifest["accounts"]:
        row = scores.locator(f'tr[data-account="{account["id"]}"]')
        expect(row).to_contain_text(account["name"])
        expect(row.locator("td.rate").first).to_contain_text("%")
    expect(scores).to_contain_text("cis_v1.2.0")
    expect(scores).to_contain_text("cis_v3.0.0")
    finding = frame.locator("#findings tr.finding").first
    expect(finding).to_be_visible()
    link = finding.locator("a", has_text=run_id)
    expect(link).to_be_visible()
    expect(frame.locator("#trend-chart")).to_be_visible()
    DOCS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS_DIR / "ui-compliance.png"))

    # The run link leaves the frame and opens that run in the UI.
    link.click()
    page.wait_for_url(f"**/dags/{DAG_ID}/runs/**")
    assert run_id in urllib.request.unquote(page.url)
    expect(page.get_by_text(run_id).first).to_be_visible()

