"""The Compliance page plugin without a browser: registration, data, ranking, filters, freshness,
read-only access through its own connection, and authorization (real PostgreSQL, real Airflow app)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from plugins import compliance_plugin as cp

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAY1, DAY2 = "2026-11-27", "2026-11-28"
RUN1, RUN2 = "scheduled__2026-11-27T00:00:00+00:00", "scheduled__2026-11-28T00:00:00+00:00"
PROD, DEV = "111111111111", "222222222222"


def conn_json(postgres, database: str, login: str = "postgres") -> str:
    return json.dumps({"conn_type": "postgres", "host": postgres.socket_dir, "port": postgres.port, "login": login,
                       "schema": database})


@pytest.fixture()
def reader_conn(postgres, database, monkeypatch):
    """The compliance_reader connection: a login role that has only the database role compliance_reader."""
    with psycopg.connect(postgres.conninfo(database), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'page_reader'").fetchone()
        if not exists:
            conn.execute("CREATE ROLE page_reader LOGIN")
        conn.execute("GRANT compliance_reader TO page_reader")
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_READER", conn_json(postgres, database, "page_reader"))
    monkeypatch.delenv("AIRFLOW_CONN_POSTGRES_DEFAULT", raising=False)


def verdict(day, framework, check_id, severity, account, resource, status, logic, title="t", run=None):
    run = run or (RUN1 if day == DAY1 else RUN2)
    return (day, framework, check_id, title, severity, account, resource, "iam_user", status,
            f"{resource} {status}s {framework} {check_id}", run, logic)


def seed(db, rows, accounts=((DAY1, PROD, "prod <core>"), (DAY1, DEV, "dev"), (DAY2, PROD, "prod <core>"),
                             (DAY2, DEV, "dev"))):
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO aws_policy_results (snapshot_date, framework, check_id, title, severity, account_id, "
            "resource_id, resource_type, status, reason, run_id, control_logic) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        cur.executemany("INSERT INTO iam_stage.accounts (snapshot_date, account_id, account_name, extracted_at) "
                        "VALUES (%s, %s, %s, now())", accounts)
    db.commit()


def organisation() -> list[tuple]:
    """Two days, two accounts. On DAY2 the dev account could not be loaded (account-level errors only)."""
    rows = []
    for day in (DAY1, DAY2):
        # console MFA: high, under two framework numbers; user-0 and user-1 fail on both days in prod
        for framework, check_id in (("cis_v1.2.0", "1.2"), ("cis_v3.0.0", "1.10")):
            for n in range(10):
                rows.append(verdict(day, framework, check_id, "high", PROD, f"user-{n}",
                                    "fail" if n < 2 else "pass", "console_users_mfa", title=f"MFA {framework}"))
        # unused credentials: medium, new on DAY2 for user-5
        rows.append(verdict(day, "cis_v3.0.0", "1.12", "medium", PROD, "user-5",
                            "fail" if day == DAY2 else "pass", "credentials_unused"))
        # a low finding open since DAY1, older than the critical one
        rows.append(verdict(day, "cis_v3.0.0", "1.16", "low", PROD, "policy-x", "fail", "support_role"))
        # the dev account: a wildcard policy (iam_hygiene) on DAY1
        if day == DAY1:
            # a control has one title per date (stored per control, not per verdict)
            rows.append(verdict(day, "cis_v3.0.0", "1.10", "high", DEV, "user-a", "pass", "console_users_mfa",
                                title="MFA cis_v3.0.0"))
            rows.append(verdict(day, "iam_hygiene", "IH.2", "high", DEV, "policy-w", "fail", "hygiene_admin_inline"))
        else:
            rows.append(verdict(day, "cis_v3.0.0", "1.10", "high", DEV, DEV, "error", "console_users_mfa",
                                title="MFA cis_v3.0.0"))
    # root MFA: critical, new on DAY2
    rows.append(verdict(DAY2, "cis_v3.0.0", "1.5", "critical", PROD, PROD, "fail", "root_mfa"))
    rows.append(verdict(DAY2, "cis_v3.0.0", "1.4", "critical", PROD, PROD, "error", "root_access_keys"))
    return rows


def mute(db, account, framework, check_id, resource):
    # an exception created before the fixture's snapshots: the database sets created_at (now) and
    # refuses a writer's value, so the fixture backdates it with the guard trigger switched off
    db.execute("INSERT INTO aws_policy_exceptions (account_id, framework, check_id, resource_pattern, reason, "
               "expires_on) VALUES (%s, %s, %s, %s, 'accepted', current_date + 300)",
               (account, framework, check_id, resource))
    db.execute("ALTER TABLE aws_policy_exceptions DISABLE TRIGGER USER")
    db.execute("UPDATE aws_policy_exceptions SET created_at = '2026-01-01'")
    db.execute("ALTER TABLE aws_policy_exceptions ENABLE TRIGGER USER")
    db.commit()


def test_plugin_registers_app_and_nav_view():
    plugin = cp.CompliancePlugin
    assert plugin.fastapi_apps[0]["url_prefix"] == "/compliance"
    view = plugin.external_views[0]
    assert view["name"] == "Compliance" and view["url_route"] == "compliance"
    assert not view["href"].startswith("/")


LOAD_PLUGINS_AS_A_TASK_DOES = """
import json, sys
from airflow.sdk.plugins_manager import _get_plugins
plugins, errors = _get_plugins()
print(json.dumps({"plugins": [p.name for p in plugins], "errors": errors,
                  "imported": sorted(m for m in ("fastapi", "airflow.api_fastapi.core_api.security")
                                     if m in sys.modules)}))
"""


def test_task_processes_load_the_plugin_without_building_the_app():
    """Every task instance's process loads the plugins folder (the task runner integrates plugin
    macros): the plugin must register without importing FastAPI or Airflow's API security there."""
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": str(PROJECT_ROOT / "include")}
    out = subprocess.run([sys.executable, "-c", LOAD_PLUGINS_AS_A_TASK_DOES], env=env, capture_output=True,
                         text=True, check=True, timeout=300).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert "iam_audit_compliance" in loaded["plugins"] and not loaded["errors"]
    assert loaded["imported"] == []


def test_the_mounted_app_is_built_on_its_first_request(monkeypatch):
    from fastapi.testclient import TestClient

    lazy = cp.LazyApp(cp.create_app)
    monkeypatch.setitem(sys.modules, "airflow.api_fastapi.core_api.security", None)  # import fails
    assert lazy._app is None
    response = TestClient(lazy).get("/icon.svg")
    assert response.status_code == 503 and "disabled" in response.text  # the real app, failing closed
    assert lazy._app is not None


def test_views_missing_before_the_first_run(postgres, database, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_READER", conn_json(postgres, database))
    data = cp.load_compliance()
    assert set(data["missing_views"]) == set(cp.VIEWS)
    assert "The compliance views are missing" in cp.render_page(data)


def test_no_results_yet(db, reader_conn):
    data = cp.load_compliance()
    assert not data["missing_views"] and not data["available"]
    assert 'id="no-results"' in cp.render_page(data)


def test_database_error_is_shown_not_raised():
    html = cp.render_page(None, error="The compliance database could not be read: OperationalError")
    assert 'id="error"' in html and "OperationalError" in html


def test_pass_rate_is_pass_over_pass_and_fail_with_errors_and_muted_beside_it(db, reader_conn):
    seed(db, organisation())
    mute(db, PROD, "cis_v1.2.0", "1.2", "user-1")
    data = cp.load_compliance()
    assert data["available"] and data["warning"] is None
    assert data["frameworks"] == ["cis_v1.2.0", "cis_v3.0.0", "iam_hygiene"]
    score = {(s["account_id"], s["framework"]): s for s in data["scores"]}
    v12 = score[PROD, "cis_v1.2.0"]
    assert (v12["snapshot_date"], v12["pass"], v12["fail"], v12["error"], v12["muted"]) == (DAY2, 8, 1, 0, 1)
    assert v12["pass_rate"] == round(100 * 8 / 9, 1)
    v3 = score[PROD, "cis_v3.0.0"]  # 8 MFA passes; fails: 2 MFA, unused, support, root MFA; 1 error
    assert (v3["pass"], v3["fail"], v3["error"], v3["muted"]) == (8, 5, 1, 0)
    assert v3["pass_rate"] == round(100 * 8 / 13, 1)
    html = cp.render_page(data)
    assert "prod &lt;core&gt;" in html  # escaped
    assert f"{v12['pass_rate']:.1f}%" in html and "1 muted" in html and "1 error" in html
    assert "pass / (pass + fail)" in html


def test_stale_account_is_marked_never_current(db, reader_conn):
    seed(db, organisation())
    data = cp.load_compliance()
    accounts = {a["account_id"]: a for a in data["accounts"]}
    assert not accounts[PROD]["is_stale"] and accounts[PROD]["latest_snapshot_date"] == DAY2
    dev = accounts[DEV]
    assert dev["is_stale"] and dev["latest_snapshot_date"] == DAY1 and dev["snapshot_age_days"] == 1
    assert dev["account_name"] == "dev"
    # the dev account's scores are those of its last evaluated snapshot, shown as stale
    assert {s["snapshot_date"] for s in data["scores"] if s["account_id"] == DEV} == {DAY1}
    html = cp.render_page(data)
    assert 'id="stale"' in html and "1 account is stale" in html
    row = html.split(f'data-account="{DEV}"', 1)[1].split("</tr>", 1)[0]
    assert "stale" in row and "1 day old" in row and "current" not in row
    prod_row = html.split(f'data-account="{PROD}"', 1)[1].split("</tr>", 1)[0]
    assert "stale" not in prod_row and "current" in prod_row
    dev_finding = next(f for f in data["findings"] if f["account_id"] == DEV)
    assert dev_finding["account_stale"]


def test_findings_worst_first_then_oldest_one_row_per_problem(db, reader_conn):
    seed(db, organisation())
    data = cp.load_compliance()
    findings = data["findings"]
    keys = [(f["severity"], f["problem"], f["account_id"], f["resource_id"], f["age_days"]) for f in findings]
    assert keys == [
        ("critical", "root_mfa", PROD, PROD, 0),
        # high: the older ones first (user-0/1 failing since DAY1, the dev wildcard policy on DAY1 only)
        ("high", "console_users_mfa", PROD, "user-0", 1),
        ("high", "console_users_mfa", PROD, "user-1", 1),
        ("high", "hygiene_admin_inline", DEV, "policy-w", 0),
        ("medium", "credentials_unused", PROD, "user-5", 0),
        ("low", "support_role", PROD, "policy-x", 1),
    ]
    assert data["findings_total"] == 6
    mfa = findings[1]
    assert mfa["numbers"] == "CIS v1.2.0 1.2 · v3.0.0 1.10"
    assert mfa["first_failing_date"] == DAY1 and mfa["title"] == "MFA cis_v3.0.0"
    assert mfa["run_id"] == RUN2 and mfa["run_url"] == "dags/aws_iam_cis/runs/" + \
        "scheduled__2026-11-28T00%3A00%3A00%2B00%3A00"
    assert findings[3]["numbers"] == "iam_hygiene IH.2" and findings[3]["run_id"] == RUN1
    html = cp.render_page(data)
    assert html.count('class="finding"') == 6
    assert '<span class="nowrap">CIS v1.2.0 1.2</span> · <span class="nowrap">v3.0.0 1.10</span>' in html
    assert 'href="../dags/aws_iam_cis/runs/scheduled__2026-11-28T00%3A00%3A00%2B00%3A00"' in html
    assert f'title="{RUN2}"' in html


def test_findings_filters(db, reader_conn):
    seed(db, organisation())

    def problems(**params):
        return [(f["problem"], f["resource_id"]) for f in cp.load_compliance(params=params)["findings"]]

    assert problems(severity="critical") == [("root_mfa", PROD)]
    assert problems(account=DEV) == [("hygiene_admin_inline", "policy-w")]
    # a problem violating the chosen framework keeps all its numbers
    v12 = cp.load_compliance(params={"framework": "cis_v1.2.0"})["findings"]
    assert [(f["resource_id"], f["numbers"]) for f in v12] == [
        ("user-0", "CIS v1.2.0 1.2 · v3.0.0 1.10"), ("user-1", "CIS v1.2.0 1.2 · v3.0.0 1.10")]
    assert problems(framework="cis_v3.0.0", severity="high", account=PROD) == [
        ("console_users_mfa", "user-0"), ("console_users_mfa", "user-1")]
    assert problems(framework="iam_hygiene", account=PROD) == []
    data = cp.load_compliance(params={"account": DEV, "severity": "low"})
    assert 'id="no-findings"' in cp.render_page(data) and "match these filters" in cp.render_page(data)


@pytest.mark.parametrize("params, fault", [
    ({"framework": "cis_v9.9.9"}, "framework 'cis_v9.9.9'"),
    ({"framework": "x' OR '1'='1"}, "framework \"x' OR '1'='1\""),
    ({"account": "1111' OR 1=1 --"}, "account \"1111' OR 1=1 --\" is not a 12-digit"),
    ({"account": "11111111111"}, "account '11111111111' is not a 12-digit"),
    ({"severity": "CRITICAL"}, "severity 'CRITICAL'"),
    ({"sort": "age"}, "unknown query parameter 'sort'"),
])
def test_bad_filters_are_refused_naming_the_parameter(db, reader_conn, params, fault):
    seed(db, organisation())
    with pytest.raises(cp.FilterError, match="^" + re.escape(fault)):
        cp.load_compliance(params=params)
    # nothing was changed by the attempt
    assert db.execute("SELECT count(*) FROM aws_policy_results").fetchone()[0] == len(organisation())


def test_trend_per_framework_over_snapshots(db, reader_conn):
    seed(db, organisation())
    data = cp.load_compliance()
    trend = {(t["snapshot_date"], t["framework"]): t for t in data["trend"]}
    assert trend[DAY1, "cis_v1.2.0"]["pass_rate"] == 80.0
    assert (trend[DAY2, "cis_v3.0.0"]["fail"], trend[DAY2, "cis_v3.0.0"]["error"]) == (5, 2)
    html = cp.render_page(data)
    assert 'id="trend-chart"' in html and html.count("<polyline") == 2  # iam_hygiene has one snapshot only
    assert html.count('class="series"') == 3


def test_series_styles_are_distinct_for_many_series():
    styles = [cp.series_style(i) for i in range(60)]
    assert len(set(styles)) == 60
    assert len({colour for colour, _ in styles[:10]}) == 10  # ten series: ten colours, no dashes needed


def test_page_reads_in_read_only_transactions(db, reader_conn, postgres, database, monkeypatch):
    """Even through the read-write fallback connection, PostgreSQL refuses any write of the page."""
    monkeypatch.delenv("AIRFLOW_CONN_COMPLIANCE_READER")
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", conn_json(postgres, database))
    hook, warning = cp.reader_hook()
    assert warning and hook.postgres_conn_id == "postgres_default"
    with cp.read_only_cursor(hook) as cur:
        cur.execute("SHOW transaction_read_only")
        assert cur.fetchone()[0] == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            cur.execute("DELETE FROM aws_policy_results")


def test_reader_role_works_and_has_no_staging_access(db, reader_conn, postgres, database):
    seed(db, organisation())
    hook, warning = cp.reader_hook()
    assert warning is None and hook.postgres_conn_id == "compliance_reader"
    assert cp.load_compliance()["available"]
    with psycopg.connect(f"host={postgres.socket_dir} port={postgres.port} user=page_reader dbname={database}") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM iam_stage.accounts")


def test_fallback_to_postgres_default_warns_on_page_and_in_log(db, postgres, database, monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_CONN_COMPLIANCE_READER", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", conn_json(postgres, database))
    seed(db, organisation())
    with caplog.at_level(logging.WARNING, logger=cp.log.name):
        data = cp.load_compliance()
    assert data["available"] and "compliance_reader is not defined" in data["warning"]
    assert "compliance_reader is not defined" in caplog.text
    assert 'id="connection-warning"' in cp.render_page(data)


def test_fails_closed_without_airflow_authorization(monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setitem(sys.modules, "airflow.api_fastapi.core_api.security", None)  # import fails
    client = TestClient(cp.create_app())
    for path in ("/", "/api/summary", "/icon.svg"):
        response = client.get(path)
        assert response.status_code == 503 and "disabled" in response.text, path


AUTH_PROBE = PROJECT_ROOT / "tests" / "ui" / "auth_probe.py"


@pytest.fixture(scope="module")
def auth_results(postgres, tmp_path_factory):
    """Status codes of the page in Airflow's own API app, per user (see auth_probe.py)."""
    from iam_audit.database import apply_schema

    database = "ui_auth_probe"
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    postgres.create_database(database)
    with postgres.connect(database) as conn:
        apply_schema(conn)
        conn.execute("DO $$ BEGIN CREATE ROLE page_reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        conn.execute("GRANT compliance_reader TO page_reader")
        conn.commit()
    home = tmp_path_factory.mktemp("airflow-auth")
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": "tests.ui.auth_probe.DagScopedAuthManager",
        "AIRFLOW__API_AUTH__JWT_SECRET": "auth-probe-secret",
        "AIRFLOW_CONN_COMPLIANCE_READER": conn_json(postgres, database, "page_reader"),
        "PYTHONPATH": f"{PROJECT_ROOT}:{PROJECT_ROOT / 'include'}",
    }
    done = subprocess.run([sys.executable, str(AUTH_PROBE)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_unauthenticated_is_refused(auth_results):
    assert auth_results["anonymous"] in (401, 403)
    assert auth_results["bad_token"] in (401, 403)


def test_user_without_read_access_to_the_dag_is_refused(auth_results):
    assert auth_results["no_role"] == 403
    assert auth_results["reader_of_another_dag"] == 403
    # the same user may read that other DAG: the refusal is about aws_iam_cis
    assert auth_results["reader_of_another_dag_on_that_dag"] is True


def test_dag_reader_sees_the_page_through_the_reader_role(auth_results):
    assert auth_results["viewer"] == 200
    assert auth_results["reader_of_aws_iam_cis"] == 200
    assert auth_results["viewer_page_has_no_warning"] is True


def test_make_airflow_gives_the_page_its_reader_login(db, postgres, database, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from iam_audit.devenv.cli import _compliance_page_conn

    seed(db, organisation())
    stack = SimpleNamespace(postgres=postgres, state_dir=tmp_path, database=database)
    conn = _compliance_page_conn(stack)
    assert _compliance_page_conn(stack) == conn  # idempotent: same login, same stored password
    assert json.loads(conn)["login"] == "compliance_page"
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_READER", conn)
    data = cp.load_compliance()
    assert data["available"] and data["warning"] is None
