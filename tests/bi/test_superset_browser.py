"""The Superset dashboard in a real browser, on a pipeline run's data (`make test-bi`).

Builds two snapshots on the embedded services (own state dir): yesterday with a weak password
policy in the management account, today with it fixed, a new console user without MFA and
IAM's GetAccountPasswordPolicy denied in one member account; mutes one open finding until
in 10 days. Then `make superset`'s setup (bi/superset/serve.py) initialises Superset, imports the
bundle and serves it; Debian's Chromium logs in, opens the dashboard, waits for every chart,
checks that none shows an error and that three tiles equal the same numbers computed in SQL.
Saves docs/superset-dashboard.png. Skips without Chromium, Playwright or Superset's venv.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.browser import browser_page, require_browser, stop_group, wait_http

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("IAM_AUDIT_BI_TEST_STATE", PROJECT_ROOT / ".devenv" / "bi-test"))
DOCS_DIR = PROJECT_ROOT / "docs"
SERVE_PY = PROJECT_ROOT / "bi" / "superset" / "serve.py"
MANAGEMENT = "123456789012"
NEW_USER = "bi-test-console-user"

pytestmark = pytest.mark.ui


def _serve_module():
    spec = importlib.util.spec_from_file_location("superset_serve", SERVE_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _require_tools(serve) -> None:
    require_browser("make test-bi")
    if not (serve.SUPERSET_BIN / "superset").exists():
        pytest.skip(f"Superset is not installed in {serve.SUPERSET_BIN.parent} (make test-bi installs it)")


def _two_snapshots(stack, env) -> None:
    from iam_audit_dev.devenv.runner import run_dag

    today = date.today()
    iam = stack.boto3_client("iam")
    strong = iam.get_account_password_policy()["PasswordPolicy"]
    iam.update_account_password_policy(MinimumPasswordLength=6, RequireSymbols=False, RequireNumbers=False,
                                       RequireUppercaseCharacters=False, RequireLowercaseCharacters=False)
    # yesterday's snapshot taken live from today's (altered) state: a test fixture, hence the override
    first = run_dag(env, logical_date=(today - timedelta(days=1)).isoformat(),
                    conf='{"mode": "live", "overwrite_past_snapshot": true}',
                    log_file=STATE_DIR / "dag-run-1.log", progress=None)
    keys = ("MinimumPasswordLength", "RequireSymbols", "RequireNumbers", "RequireUppercaseCharacters",
            "RequireLowercaseCharacters", "AllowUsersToChangePassword", "MaxPasswordAge", "PasswordReusePrevention",
            "HardExpiry")
    iam.update_account_password_policy(**{k: strong[k] for k in keys if k in strong})
    iam.create_user(UserName=NEW_USER)
    iam.create_login_profile(UserName=NEW_USER, Password="Emulated-Only-Password-1!")
    with stack.postgres.connect(stack.database) as conn:
        member = conn.execute("SELECT min(account_id) FROM aws_policy_accounts WHERE account_id <> %s",
                              (MANAGEMENT,)).fetchone()[0]
    stack.emulator.set_faults([{"account_id": member, "service": "iam", "action": "GetAccountPasswordPolicy",
                                "error": "AccessDenied"}])
    second = run_dag(env, logical_date=today.isoformat(), conf='{"mode": "live"}',
                     log_file=STATE_DIR / "dag-run-2.log", progress=None)
    stack.emulator.clear_faults()
    for result in (first, second):
        loaded = [t for t in result.failed_tasks if t.startswith("load_staging") or t.startswith("check_")]
        assert not loaded, f"DAG run {result.run_id}: {loaded} failed; see {result.log_file}"
    with stack.postgres.connect(stack.database) as conn:
        conn.execute(
            """INSERT INTO aws_policy_exceptions (account_id, resource_pattern, reason, expires_on, created_by)
               SELECT account_id, resource_id, 'accepted until the migration (test)', current_date + 10, 'bi-test'
               FROM aws_policy_open_findings WHERE account_id <> %s ORDER BY account_id, resource_id LIMIT 1""",
            (MANAGEMENT,))


@pytest.fixture(scope="module")
def superset():
    """Two snapshots on the embedded services and Superset on a free port: yields (url, admin password, stack)."""
    serve = _serve_module()
    _require_tools(serve)
    from iam_audit_dev.devenv import stack as stack_mod
    from iam_audit_dev.devenv.runner import migrate
    from iam_audit_dev.emulator.process import free_port

    for stale in ("airflow", "superset"):
        shutil.rmtree(STATE_DIR / stale, ignore_errors=True)
    stack, _ = stack_mod.up(state_dir=STATE_DIR, accounts=3, users=4)
    proc = None
    try:
        with stack.postgres.connect("postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{stack.database}" WITH (FORCE)')
        stack.postgres.create_database(stack.database)
        env = stack.airflow_env(airflow_home=STATE_DIR / "airflow")
        migrate(env)
        _two_snapshots(stack, env)
        prepared = serve.prepare(STATE_DIR, free_port())
        log = STATE_DIR / "superset" / "server.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(serve.server_command(prepared), env=prepared.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{prepared.port}"
        wait_http(f"{url}/health", proc, log, "superset", timeout=300)
        yield url, prepared.admin_password, stack
    finally:
        if proc is not None:
            stop_group(proc)
        stack_mod.down(STATE_DIR)


@pytest.fixture(scope="module")
def dashboard(superset):
    url, password, _ = superset
    with browser_page(url, 1600, 2400, timeout_ms=60_000) as page:
        page.goto("/login/")
        page.wait_for_selector("input[type=password]")
        page.locator("input:visible:not([type=password])").first.fill("admin")
        page.locator("input[type=password]").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda u: "/login" not in u)
        page.goto("/superset/dashboard/aws-iam-compliance/")
        yield page


CHART = "[data-test=chart-grid-component]"
RENDERED = ".header-line, svg, canvas, table, :text('No results were returned')"


def test_every_chart_renders_without_error(dashboard, superset):
    _, _, stack = superset
    page = dashboard
    charts = page.locator(CHART)
    # locators only: the dashboard's Content Security Policy forbids the string evaluation wait_for_function uses
    charts.nth(11).wait_for(state="attached", timeout=120_000)
    names = [charts.nth(i).get_attribute("data-test-chart-name") for i in range(charts.count())]
    assert len(names) == 12, names
    for i in range(len(names)):
        chart = charts.nth(i)
        chart.scroll_into_view_if_needed()
        chart.locator(".slice_container").locator(RENDERED).first.wait_for(state="attached", timeout=120_000)
    loading = page.locator("[data-test=loading-indicator], .loading")
    for _ in range(480):                      # up to 120 s for the last charts to finish loading
        if not loading.count():
            break
        page.wait_for_timeout(250)
    assert not loading.count(), "charts still loading after 120 s"
    errors = [f"{names[i]}: {charts.nth(i).inner_text()[:300]}" for i in range(len(names))
              if charts.nth(i).locator("[role=alert], .ant-alert-error").count()]
    assert not errors, errors
    for name in ("Newly failing and resolved since the previous snapshot", "Errors: data that could not be collected",
                 "Muted findings whose exception expires within 30 days", "Accounts ranked by pass rate"):
        assert page.locator(f"{CHART}[data-test-chart-name='{name}'] table").count(), f"{name}: no rows shown"
    charts.first.scroll_into_view_if_needed()
    DOCS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS_DIR / "superset-dashboard.png"))


def _tile(page, name: str) -> float:
    text = page.locator(f"{CHART}[data-test-chart-name='{name}'] .header-line").inner_text()
    number = float(re.sub(r"[^\d.]", "", text))
    return number / 100 if text.strip().endswith("%") else number


def test_tiles_equal_sql(dashboard, superset):
    _, _, stack = superset
    with stack.postgres.connect(stack.database) as conn:
        open_findings = conn.execute("SELECT count(DISTINCT (control_logic, account_id, resource_id)) "
                                     "FROM aws_policy_open_findings").fetchone()[0]
        # the headline unit (iam_audit.reporting.headline): each finding once, at its worst verdict over the frameworks
        failing, evaluated = conn.execute(
            """WITH findings AS (
                   SELECT CASE WHEN bool_or(effective_status = 'fail') THEN 'fail'
                               WHEN bool_or(effective_status = 'error') THEN 'error'
                               WHEN bool_or(effective_status = 'muted') THEN 'muted' ELSE 'pass' END AS worst
                   FROM aws_policy_latest WHERE is_current
                   GROUP BY control_logic, account_id, resource_id)
               SELECT count(*) FILTER (WHERE worst = 'fail'), count(*) FILTER (WHERE worst IN ('pass', 'fail'))
               FROM findings""").fetchone()
        newly_failing = conn.execute(
            """SELECT count(DISTINCT (k.logic, c.account_id, c.resource_id))
               FROM aws_policy_changes c JOIN aws_policy_controls k USING (framework, check_id)
               WHERE c.snapshot_date = (SELECT max(snapshot_date) FROM aws_policy_accounts)
                 AND c.current_status = 'fail' AND c.change_type IN ('newly_failing', 'new_resource')""").fetchone()[0]
        not_evaluated = conn.execute(
            """SELECT count(DISTINCT (control_logic, account_id)) FROM aws_policy_results
               WHERE status = 'error' AND snapshot_date = (SELECT max(snapshot_date) FROM aws_policy_accounts)"""
        ).fetchone()[0]
    assert newly_failing > 0 and not_evaluated > 0, "the fixture must produce changes and errors"
    assert _tile(dashboard, "Open findings") == open_findings
    assert _tile(dashboard, "Pass rate now") == pytest.approx(round(100 * (evaluated - failing) / evaluated, 1) / 100)
    assert _tile(dashboard, "Newly failing") == newly_failing
    assert _tile(dashboard, "Not evaluated") == not_evaluated
