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

from iam_audit.web import app as web_app
from iam_audit.web import params as web_params
from iam_audit.web import plugin as web_plugin
from iam_audit.web import queries, render

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
    plugin = web_plugin.CompliancePlugin
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
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", LOAD_PLUGINS_AS_A_TASK_DOES], env=env, capture_output=True,
                         text=True, check=True, timeout=300).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert "iam_audit_compliance" in loaded["plugins"] and not loaded["errors"]
    assert loaded["imported"] == []


def test_the_mounted_app_is_built_on_its_first_request(monkeypatch):
    from fastapi.testclient import TestClient

    lazy = web_app.LazyApp(web_app.create_app)
    monkeypatch.setitem(sys.modules, "airflow.api_fastapi.core_api.security", None)  # import fails
    assert lazy._app is None
    response = TestClient(lazy).get("/icon.svg")
    assert response.status_code == 503 and "disabled" in response.text  # the real app, failing closed
    assert lazy._app is not None


def test_views_missing_before_the_first_run(postgres, database, monkeypatch):
    with psycopg.connect(postgres.conninfo(database), autocommit=True) as conn:
        conn.execute("DO $$ BEGIN CREATE ROLE page_nobody LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_READER", conn_json(postgres, database, "page_nobody"))
    data = queries.load_compliance()
    assert set(data["missing_views"]) == set(queries.VIEWS)
    assert "The compliance views are missing" in render.render_page(data)


def test_no_results_yet(db, reader_conn):
    data = queries.load_compliance()
    assert not data["missing_views"] and not data["available"]
    assert 'id="no-results"' in render.render_page(data)


def test_database_error_is_shown_not_raised():
    html = render.render_page(None, error="The compliance database could not be read: OperationalError")
    assert 'id="error"' in html and "OperationalError" in html


def test_pass_rate_is_pass_over_pass_and_fail_with_errors_and_muted_beside_it(db, reader_conn):
    seed(db, organisation())
    mute(db, PROD, "cis_v1.2.0", "1.2", "user-1")
    data = queries.load_compliance()
    assert data["available"] and data["warning"] is None
    assert data["frameworks"] == ["cis_v1.2.0", "cis_v3.0.0", "iam_hygiene"]
    score = {(s["account_id"], s["framework"]): s for s in data["scores"]}
    v12 = score[PROD, "cis_v1.2.0"]
    assert (v12["snapshot_date"], v12["pass"], v12["fail"], v12["error"], v12["muted"]) == (DAY2, 8, 1, 0, 1)
    assert v12["pass_rate"] == round(100 * 8 / 9, 1)
    v3 = score[PROD, "cis_v3.0.0"]  # 8 MFA passes; fails: 2 MFA, unused, support, root MFA; 1 error
    assert (v3["pass"], v3["fail"], v3["error"], v3["muted"]) == (8, 5, 1, 0)
    assert v3["pass_rate"] == round(100 * 8 / 13, 1)
    html = render.render_page(data)
    assert "prod &lt;core&gt;" in html  # escaped
    assert f"{v12['pass_rate']:.1f}%" in html and "1 muted" in html and "1 error" in html
    assert "pass / (pass + fail)" in html


def test_stale_account_is_marked_never_current(db, reader_conn):
    seed(db, organisation())
    data = queries.load_compliance()
    accounts = {a["account_id"]: a for a in data["accounts"]}
    assert not accounts[PROD]["is_stale"] and accounts[PROD]["latest_snapshot_date"] == DAY2
    dev = accounts[DEV]
    assert dev["is_stale"] and dev["latest_snapshot_date"] == DAY1 and dev["snapshot_age_days"] == 1
    assert dev["account_name"] == "dev"
    # the dev account's scores are those of its last evaluated snapshot, shown as stale
    assert {s["snapshot_date"] for s in data["scores"] if s["account_id"] == DEV} == {DAY1}
    html = render.render_page(data)
    assert 'id="stale"' in html and "1 account is stale" in html
    scores = html.split('id="scores"', 1)[1]      # the account table (findings rows carry data-account too)
    row = scores.split(f'data-account="{DEV}"', 1)[1].split("</tr>", 1)[0]
    assert "stale" in row and "1 day old" in row and "current" not in row
    prod_row = scores.split(f'data-account="{PROD}"', 1)[1].split("</tr>", 1)[0]
    assert "stale" not in prod_row and "current" in prod_row
    dev_finding = next(f for f in data["findings"] if f["account_id"] == DEV)
    assert dev_finding["account_stale"]


def test_findings_worst_first_then_oldest_one_row_per_problem(db, reader_conn):
    seed(db, organisation())
    data = queries.load_compliance()
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
    html = render.render_page(data)
    assert html.count('class="finding"') == 6
    assert '<span class="nowrap">CIS v1.2.0 1.2</span> · <span class="nowrap">v3.0.0 1.10</span>' in html
    assert 'href="../dags/aws_iam_cis/runs/scheduled__2026-11-28T00%3A00%3A00%2B00%3A00"' in html
    assert f'title="{RUN2}"' in html


def test_findings_filters(db, reader_conn):
    seed(db, organisation())

    def problems(**params):
        return [(f["problem"], f["resource_id"]) for f in queries.load_compliance(params=params)["findings"]]

    assert problems(severity="critical") == [("root_mfa", PROD)]
    assert problems(account=DEV) == [("hygiene_admin_inline", "policy-w")]
    # a problem violating the chosen framework keeps all its numbers
    v12 = queries.load_compliance(params={"framework": "cis_v1.2.0"})["findings"]
    assert [(f["resource_id"], f["numbers"]) for f in v12] == [
        ("user-0", "CIS v1.2.0 1.2 · v3.0.0 1.10"), ("user-1", "CIS v1.2.0 1.2 · v3.0.0 1.10")]
    assert problems(framework="cis_v3.0.0", severity="high", account=PROD) == [
        ("console_users_mfa", "user-0"), ("console_users_mfa", "user-1")]
    assert problems(framework="iam_hygiene", account=PROD) == []
    data = queries.load_compliance(params={"account": DEV, "severity": "low"})
    assert 'id="no-findings"' in render.render_page(data) and "match these filters" in render.render_page(data)


@pytest.mark.parametrize("params, fault", [
    ({"framework": "cis_v9.9.9"}, "framework 'cis_v9.9.9'"),
    ({"framework": "x' OR '1'='1"}, "framework \"x' OR '1'='1\""),
    ({"account": "1111' OR 1=1 --"}, "account \"1111' OR 1=1 --\" is not a 12-digit"),
    ({"account": "11111111111"}, "account '11111111111' is not a 12-digit"),
    ({"severity": "CRITICAL"}, "severity 'CRITICAL'"),
    ({"order": "age"}, "unknown query parameter 'order'"),
    ({"page": "0"}, "page '0' is not a whole number from 1 to 1,000,000"),
    ({"page": "2; DROP TABLE x"}, "page '2; DROP TABLE x' is not a whole number"),
    ({"page": "-1"}, "page '-1' is not a whole number"),
    ({"page_size": "501"}, "page_size '501' is not a whole number from 1 to 500"),
    ({"page_size": "1.5"}, "page_size '1.5' is not a whole number"),
    ({"sort": "worst"}, "sort 'worst' is not one of pass_rate, fail, stale, account"),
])
def test_bad_filters_are_refused_naming_the_parameter(db, reader_conn, params, fault):
    seed(db, organisation())
    with pytest.raises(web_params.FilterError, match="^" + re.escape(fault)):
        queries.load_compliance(params=params)
    # nothing was changed by the attempt
    assert db.execute("SELECT count(*) FROM aws_policy_results").fetchone()[0] == len(organisation())


def test_trend_per_framework_over_snapshots(db, reader_conn):
    seed(db, organisation())
    data = queries.load_compliance()
    trend = {(t["snapshot_date"], t["framework"]): t for t in data["trend"]}
    assert trend[DAY1, "cis_v1.2.0"]["pass_rate"] == 80.0
    assert (trend[DAY2, "cis_v3.0.0"]["fail"], trend[DAY2, "cis_v3.0.0"]["error"]) == (5, 2)
    html = render.render_page(data)
    assert 'id="trend-chart"' in html and html.count("<polyline") == 2  # iam_hygiene has one snapshot only
    assert html.count('class="series"') == 3


def test_series_styles_are_distinct_for_many_series():
    styles = [render.series_style(i) for i in range(60)]
    assert len(set(styles)) == 60
    assert len({colour for colour, _ in styles[:10]}) == 10  # ten series: ten colours, no dashes needed


def test_page_reads_in_read_only_transactions(db, reader_conn, postgres, database, monkeypatch):
    """Even through the read-write fallback connection (opted in), PostgreSQL refuses any write of the page."""
    monkeypatch.delenv("AIRFLOW_CONN_COMPLIANCE_READER")
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", conn_json(postgres, database))
    monkeypatch.setenv(queries.ALLOW_WRITER_ENV, "true")
    hook, warning = queries.reader_hook()
    assert warning and hook.postgres_conn_id == "postgres_default"
    with queries.read_only_cursor(hook) as cur:
        cur.execute("SHOW transaction_read_only")
        assert cur.fetchone()[0] == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            cur.execute("DELETE FROM aws_policy_results")


def test_reader_role_works_and_has_no_staging_access(db, reader_conn, postgres, database):
    seed(db, organisation())
    hook, warning = queries.reader_hook()
    assert warning is None and hook.postgres_conn_id == "compliance_reader"
    assert queries.load_compliance()["available"]
    with psycopg.connect(f"host={postgres.socket_dir} port={postgres.port} user=page_reader dbname={database}") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM iam_stage.accounts")


def test_without_its_reader_connection_the_page_refuses_and_tells_only_the_log(db, postgres, database,
                                                                                   monkeypatch, caplog):
    """No fallback to the pipeline's read-write connection unless the API server opts in; a login that can
    write is refused as well; the viewer sees a reference, the log the cause (host and login stay there)."""
    from fastapi.testclient import TestClient

    monkeypatch.delenv("AIRFLOW_CONN_COMPLIANCE_READER", raising=False)
    monkeypatch.delenv(queries.ALLOW_WRITER_ENV, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", conn_json(postgres, database))
    seed(db, organisation())
    with pytest.raises(queries.PageConfigurationError, match="compliance_reader is not defined"):
        queries.load_compliance()
    monkeypatch.setattr(web_app, "_authorize", lambda: (lambda: None))  # authorization is tested below
    client = TestClient(web_app.create_app())
    with caplog.at_level(logging.ERROR, logger=web_app.log.name):
        response = client.get("/")
    assert response.status_code == 503
    reference = re.search(r"reference ([0-9a-f]{12})", response.text).group(1)
    assert "compliance_reader is not defined" not in response.text and postgres.socket_dir not in response.text
    assert reference in caplog.text and "compliance_reader is not defined" in caplog.text
    # the reader connection given a login that can write (here a superuser): refused too
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_READER", conn_json(postgres, database))
    with pytest.raises(queries.PageConfigurationError, match="login postgres may write"):
        queries.load_compliance()
    response = client.get("/api/summary")
    assert response.status_code == 503 and "postgres" not in response.json()["error"]
    # a database error: its text (host, port, login) is logged, not shown
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_READER", json.dumps(
        {"conn_type": "postgres", "host": "/nonexistent-socket-dir", "port": 5999, "login": "page_reader",
         "schema": database}))
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger=web_app.log.name):
        response = TestClient(web_app.create_app()).get("/")
    assert response.status_code == 503 and "nonexistent-socket-dir" not in response.text
    assert "nonexistent-socket-dir" in caplog.text


def test_fallback_to_postgres_default_when_opted_in_warns_on_page_and_in_log(db, postgres, database, monkeypatch,
                                                                             caplog):
    monkeypatch.delenv("AIRFLOW_CONN_COMPLIANCE_READER", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", conn_json(postgres, database))
    monkeypatch.setenv(queries.ALLOW_WRITER_ENV, "true")
    seed(db, organisation())
    with caplog.at_level(logging.WARNING, logger=web_app.log.name):
        data = queries.load_compliance()
    assert data["available"] and "compliance_reader is not defined" in data["warning"]
    assert "compliance_reader is not defined" in caplog.text
    assert 'id="connection-warning"' in render.render_page(data)


def test_fails_closed_without_airflow_authorization(monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setitem(sys.modules, "airflow.api_fastapi.core_api.security", None)  # import fails
    client = TestClient(web_app.create_app())
    for path in ("/", "/api/summary", "/icon.svg"):
        response = client.get(path)
        assert response.status_code == 503 and "disabled" in response.text, path


# -- an organisation of many accounts: bounded pages, worst first, totals over all ------------------

MANY = 120
NEVER = {13, 77}  # never evaluated: account-level errors only
STALE = {i for i in range(MANY) if i % 10 == 7} - NEVER  # evaluated on DAY1 only: account-level errors on DAY2


def many_id(i: int) -> str:
    return f"{300000000000 + i}"


def many_accounts() -> tuple[list[tuple], list[tuple]]:
    """MANY accounts: i % 11 of 10 users without MFA (under CIS v1.2.0 1.2 and v3.0.0 1.10), an unused
    credential failing v3.0.0 1.12 in every third account; STALE and NEVER as above."""
    rows, staged = [], []
    for i in range(MANY):
        account = many_id(i)
        days = [DAY2] if i in NEVER else [DAY1, DAY2] if i in STALE else [DAY2]
        staged += [(day, account, f"acct-{i:03d}") for day in days]
        if i in NEVER or i in STALE:
            rows.append(verdict(DAY2, "cis_v3.0.0", "1.10", "high", account, account, "error",
                                "console_users_mfa", title="MFA cis_v3.0.0"))
        if i in NEVER:
            continue
        day = DAY1 if i in STALE else DAY2
        for framework, check_id in (("cis_v1.2.0", "1.2"), ("cis_v3.0.0", "1.10")):
            for n in range(10):
                rows.append(verdict(day, framework, check_id, "high", account, f"user-{n}",
                                    "fail" if n < i % 11 else "pass", "console_users_mfa", title=f"MFA {framework}"))
        rows.append(verdict(day, "cis_v3.0.0", "1.12", "medium", account, "user-0",
                            "fail" if i % 3 == 0 else "pass", "credentials_unused"))
    return rows, staged


def expected_counts(rows) -> dict[tuple[str, str], list[int]]:
    """(account, framework) -> [pass, fail] of the account's newest evaluated date, from the seeded rows."""
    newest = {}
    for r in rows:
        if r[8] != "error":
            newest[r[5]] = max(newest.get(r[5], r[0]), r[0])
    counts: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        if r[8] != "error" and r[0] == newest[r[5]]:
            c = counts.setdefault((r[5], r[1]), [0, 0])
            c[r[8] == "fail"] += 1
    return counts


def worst_first(counts, framework=None) -> list[str]:
    """Account ids by lowest pass rate (unknown first), then most fails, then id: sort=pass_rate."""
    from fractions import Fraction

    def key(account):
        mine = [c for (a, f), c in counts.items() if a == account and framework in (None, f)]
        rates = [Fraction(p, p + f) for p, f in mine if p + f]
        fails = max((f for _, f in mine), default=None)
        return (bool(rates), min(rates, default=0), fails is not None, -(fails or 0), account)

    return sorted((many_id(i) for i in range(MANY)), key=key)


def seed_many(db, rows, staged) -> None:
    """seed() for thousands of verdicts: one call of the pipeline's write path (aws_policy_store_evaluation)
    per date instead of the view's per-row trigger. Variants and scopes as that trigger registers them."""
    with db.cursor() as cur:
        for day in sorted({r[0] for r in rows}):
            mine = [r for r in rows if r[0] == day]
            variants = {}
            for r in mine:
                logic, framework, check_id = r[11], r[1], r[2]
                if (logic, framework, check_id) in variants:
                    continue
                params = json.dumps({"framework": framework, "check_id": check_id})
                cur.execute("INSERT INTO aws_policy_variants (control_logic, params) VALUES (%s, %s::jsonb) "
                            "ON CONFLICT (control_logic, params) DO NOTHING", (logic, params))
                cur.execute("SELECT variant_id FROM aws_policy_variants "
                            "WHERE control_logic = %s AND params = %s::jsonb", (logic, params))
                variants[logic, framework, check_id] = variant = cur.fetchone()[0]
                cur.execute("INSERT INTO aws_policy_scopes (snapshot_date, framework, check_id, variant_id, "
                            "title, severity) VALUES (%s, %s, %s, %s, %s, %s)",
                            (day, framework, check_id, variant, r[3], r[4]))
            cur.execute("CREATE TEMP TABLE _eval_pairs (variant_id integer, account_id text, control_logic text, "
                        "error_reason text) ON COMMIT DROP")
            cur.execute("CREATE TEMP TABLE _eval_verdicts (variant_id integer, account_id text, resource_id text, "
                        "resource_type text, status text, reason text) ON COMMIT DROP")
            pairs = sorted({(variants[r[11], r[1], r[2]], r[5], r[11]) for r in mine})
            cur.executemany("INSERT INTO _eval_pairs VALUES (%s, %s, %s, NULL)", pairs)
            cur.executemany("INSERT INTO _eval_verdicts VALUES (%s, %s, %s, %s, %s, %s)",
                            [(variants[r[11], r[1], r[2]], r[5], r[6], r[7], r[8], r[9]) for r in mine])
            cur.execute("SELECT aws_policy_store_evaluation(%s, %s)", (day, RUN1 if day == DAY1 else RUN2))
            db.commit()
        cur.executemany("INSERT INTO iam_stage.accounts (snapshot_date, account_id, account_name, extracted_at) "
                        "VALUES (%s, %s, %s, now())", staged)
    db.commit()


@pytest.fixture()
def many(db, reader_conn):
    rows, staged = many_accounts()
    seed_many(db, rows, staged)
    # the same verdicts as the view's own insert path gives (seed), read back through the view
    assert db.execute("SELECT count(*) FROM aws_policy_results").fetchone()[0] == len(rows)
    return expected_counts(rows)


def _ids(data) -> list[str]:
    return [a["account_id"] for a in data["accounts"]]


def test_many_accounts_are_paged_worst_first_with_totals_over_all(many):
    expected = worst_first(many)
    assert expected[:2] == [many_id(13), many_id(77)]  # never evaluated: unknown ranks worst
    pages = [queries.load_compliance(params={"page": str(n)} if n > 1 else {}) for n in (1, 2, 3)]
    assert [len(p["accounts"]) for p in pages] == [50, 50, MANY - 100]
    shown = [a for p in pages for a in _ids(p)]
    assert shown == expected and len(set(shown)) == MANY  # nothing lost or repeated across pages
    assert [p["paging"] for p in pages] == [{"page": n, "page_size": 50, "sort": "pass_rate", "pages": 3}
                                           for n in (1, 2, 3)]
    # the scores shipped are the page's accounts' only, at each one's newest evaluated snapshot
    for p in pages:
        got = {(s["account_id"], s["framework"]): [s["pass"], s["fail"]] for s in p["scores"]}
        assert got == {k: v for k, v in many.items() if k[0] in set(_ids(p))}
    # headline totals cover every account, on every page and whatever the filter
    for data in (*pages, queries.load_compliance(params={"account": many_id(5)})):
        t = data["totals"]
        assert (t["accounts"], t["stale"], t["never_evaluated"]) == (MANY, len(STALE) + len(NEVER), len(NEVER))
        assert t["latest_run_date"] == DAY2
        frameworks = {f["framework"]: f for f in t["frameworks"]}
        assert set(frameworks) == {"cis_v1.2.0", "cis_v3.0.0"} == set(data["frameworks"])
        for framework, f in frameworks.items():
            mine = [c for (_, fw), c in many.items() if fw == framework]
            assert (f["pass"], f["fail"], f["accounts"]) == (sum(p for p, _ in mine), sum(x for _, x in mine),
                                                             MANY - len(NEVER))
        assert data["accounts_matching"] == (1 if data["filters"] else MANY)
    assert _ids(queries.load_compliance(params={"account": many_id(5)})) == [many_id(5)]
    # smaller pages split the same order
    small = [_ids(queries.load_compliance(params={"page": str(n), "page_size": "25"})) for n in range(1, 6)]
    assert [a for p in small for a in p] == expected and [len(p) for p in small] == [25] * 4 + [20]
    past = queries.load_compliance(params={"page": "4"})
    assert past["accounts"] == [] and past["paging"]["pages"] == 3 and past["totals"]["accounts"] == MANY


def test_many_accounts_other_rankings(many):
    # the chosen framework ranks the accounts by its own pass rate
    by_v12 = [a for n in (1, 2, 3) for a in _ids(queries.load_compliance(params={"framework": "cis_v1.2.0",
                                                                            "page": str(n)}))]
    assert by_v12 == worst_first(many, "cis_v1.2.0") != worst_first(many)
    stale_first = _ids(queries.load_compliance(params={"sort": "stale", "page_size": "20"}))
    assert stale_first[:2] == [many_id(13), many_id(77)]
    assert set(stale_first[2:2 + len(STALE)]) == {many_id(i) for i in STALE}
    fails = [a for n in (1, 2, 3) for a in _ids(queries.load_compliance(params={"sort": "fail", "page": str(n)}))]
    most = [max(f for (a, _), (_, f) in many.items() if a == acct) if acct not in {many_id(i) for i in NEVER}
            else -1 for acct in fails]
    assert most == sorted(most, reverse=True) and len(set(fails)) == MANY
    assert _ids(queries.load_compliance(params={"sort": "account", "page_size": "3"})) == [many_id(i) for i in range(3)]


def test_many_accounts_page_is_bounded_and_links_its_pages(many):
    data = queries.load_compliance(params={"page": "2", "severity": "high"})
    html = render.render_page(data)
    rows = re.findall(r'<tr class="account[^"]*" data-account="(\d{12})"', html)
    assert rows == _ids(data) and len(rows) == 50
    assert 'id="headline"><b>120</b> accounts' in html
    assert "accounts 51–100 of 120 · page 2 of 3" in html
    assert 'rel="prev" href="?severity=high"' in html and 'rel="next" href="?severity=high&amp;page=3"' in html
    last = render.render_page(queries.load_compliance(params={"page": "3"}))
    assert 'rel="next"' not in last and 'rel="prev" href="?page=2"' in last
    # the stale notice counts all stale accounts, names the first ten, links to them
    notice = html.split('id="stale">', 1)[1].split("</div>", 1)[0]
    assert notice.startswith(f"{len(STALE) + len(NEVER)} accounts are stale")
    assert f"and {len(STALE) + len(NEVER) - queries.STALE_NAMED} more" in notice and "sort=stale" in notice
    # no list of every account: the account filter is a text field
    assert html.count(f"{300000000000 + 1}") <= 2 and '<input name="account"' in html
    one = render.render_page(queries.load_compliance(params={"account": "999999999999"}))
    assert 'id="no-accounts"' in one


def test_many_accounts_over_http_json_matches_and_bad_paging_is_a_400(many, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setattr(web_app, "_authorize", lambda: (lambda: None))  # authorization is tested above
    client = TestClient(web_app.create_app())
    response = client.get("/api/summary", params={"page": "2", "page_size": "30"})
    assert response.status_code == 200
    body = response.json()
    direct = queries.load_compliance(params={"page": "2", "page_size": "30"})
    assert body == json.loads(json.dumps(direct))
    assert [a["account_id"] for a in body["accounts"]] == worst_first(many)[30:60]
    page = client.get("/", params={"page": "2", "page_size": "30"})
    assert re.findall(r'data-account="(\d{12})"><td>', page.text) == _ids(direct)
    for params, name in (({"page": "x"}, "page 'x'"), ({"page_size": "0"}, "page_size '0'"),
                         ({"sort": "DESC"}, "sort 'DESC'")):
        for path in ("/", "/api/summary"):
            bad = client.get(path, params=params)
            assert bad.status_code == 400 and name in bad.text.replace("&#x27;", "'"), (path, params, bad.text)


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
        "PYTHONPATH": str(PROJECT_ROOT),
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

    from iam_audit_dev.devenv.cli import _compliance_page_conn

    seed(db, organisation())
    stack = SimpleNamespace(postgres=postgres, state_dir=tmp_path, database=database)
    conn = _compliance_page_conn(stack)
    assert _compliance_page_conn(stack) == conn  # idempotent: same login, same stored password
    assert json.loads(conn)["login"] == "compliance_page"
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_READER", conn)
    data = queries.load_compliance()
    assert data["available"] and data["warning"] is None


def test_last_alerts_sent_are_listed_escaped(db, reader_conn):
    seed(db, organisation())
    assert 'id="alerts-sent"' in render.render_page(queries.load_compliance()) and "No alert sent yet" in \
        render.render_page(queries.load_compliance())
    for i, outcome in enumerate(("sent", "failed", "sent")):
        db.execute(
            "INSERT INTO aws_policy_alert_ledger (rule, alert_key, channel, recipient, delivery, account_id, severity,"
            " snapshot_date, run_id, payload, payload_digest, outcome, sent_at) VALUES ('newly_failing', %s, "
            "'email', 'sec@example.com', 'immediate', %s, 'high', %s, %s, %s, 'x', %s, "
            "CASE WHEN %s = 'sent' THEN now() - make_interval(mins => %s) END)",
            (f"k{i}", PROD, DAY2, RUN2, json.dumps({"title": f"<b>alert {i}</b>", "resource_id": f"user-{i}"}),
             outcome, outcome, 10 - i))
    db.commit()
    data = queries.load_compliance()   # read as compliance_reader
    assert [a["title"] for a in data["alerts_sent"]] == ["<b>alert 2</b>", "<b>alert 0</b>"]
    html = render.render_page(data)
    assert "&lt;b&gt;alert 2&lt;/b&gt;" in html and "<b>alert 2" not in html and "alert 1" not in html


def test_manual_controls_show_their_organisation_evidence_never_a_pass(db, reader_conn):
    """CIS v7.0.0 2.1.2 (manual): the member account without a guardrail SCP is flagged first; the
    control gets no verdict and no pass rate."""
    from tests.checks.staging import Snapshot

    seed(db, organisation())
    s = Snapshot(db, snapshot_date=DAY2)
    s.organization(features=(), management=DEV)
    s.org_node("r-root", "ROOT", None, "Root").org_node("ou-prod", "ORGANIZATIONAL_UNIT", "r-root", "Prod")
    s.org_node(DEV, "ACCOUNT", "r-root", "dev").org_node(PROD, "ACCOUNT", "ou-prod", "prod <core>")
    s.org_node("444444444444", "ACCOUNT", "r-root", "legacy <apps>")
    s.org_policy("p-FullAWSAccess", "FullAWSAccess", ("r-root",), aws_managed=True)
    s.org_policy("p-guard", "Guardrail", ("ou-prod",))
    s.commit()
    data = queries.load_compliance()
    controls = {(c["framework"], c["check_id"]): c for c in data["manual_evidence"]}
    guard = controls["cis_v7.0.0", "2.1.2"]
    assert (guard["total"], guard["flagged"]) == (2, 1)
    assert guard["facts"][0]["account_id"] == "444444444444" and guard["facts"][0]["attention"]
    assert "no SCP beyond FullAWSAccess" in guard["facts"][0]["detail"]
    assert controls["cis_v7.0.0", "2.1.1"]["flagged"] >= 1  # root credentials management off
    keys = list(controls)
    assert keys == sorted(keys, key=lambda k: tuple(int(p) for p in k[1].split(".")))  # 2.1.1 .. 2.1.6
    assert "cis_v7.0.0" not in data["frameworks"]  # no verdicts, so no pass rate
    html = render.render_page(data)
    section = html.split('id="manual"', 1)[1].split("</section>", 1)[0]
    assert 'data-control="2.1.2"' in section and "legacy &lt;apps&gt;" in section
    assert "never counted as a pass" in section
    only_v3 = queries.load_compliance(params={"framework": "cis_v3.0.0"})
    assert only_v3["manual_evidence"] == []


# -- a page no viewer can use to stall the API server ------------------------------------------------

def test_page_requests_never_take_the_threads_other_routes_need(monkeypatch):
    """More page requests at once than the API server's shared thread pool holds (anyio's default
    limiter, which synchronous routes such as the Execution API's use): while they are all waiting on
    the database, another synchronous route still answers, the page's reads run two at a time on a
    limiter of their own, and the waiting requests are then served from the cache. The assertions are
    on order and counts; the waits are bounded only so that a regression fails instead of hanging."""
    import asyncio
    import threading

    import anyio
    import httpx
    from fastapi import FastAPI

    monkeypatch.setattr(web_app, "_authorize", lambda: (lambda: None))
    monkeypatch.setenv("IAM_AUDIT_PAGE_CONCURRENCY", "2")
    monkeypatch.setenv("IAM_AUDIT_PAGE_DEADLINE_SECONDS", "600")
    release, lock = threading.Event(), threading.Lock()
    state = {"inside": 0, "most": 0, "calls": 0}

    def blocked_load(hook=None, params=None):
        with lock:
            state["calls"] += 1
            state["inside"] += 1
            state["most"] = max(state["most"], state["inside"])
        release.wait(300)
        with lock:
            state["inside"] -= 1
        return {"available": False, "missing_views": list(queries.VIEWS)}

    monkeypatch.setattr(web_app, "load_compliance", blocked_load)
    server = FastAPI()
    server.mount(web_plugin.URL_PREFIX, web_app.create_app())

    @server.get("/other")
    def other() -> dict:  # a synchronous route: it needs a thread of the shared pool
        return {"ok": True}

    async def scenario():
        shared = anyio.to_thread.current_default_thread_limiter()
        requests = int(shared.total_tokens) + 10
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://api") as client:
            pages = [asyncio.create_task(client.get(f"{web_plugin.URL_PREFIX}/api/summary",
                                                    params={"severity": "high"}))
                     for _ in range(requests)]

            async def page_reads_started():
                while state["inside"] < 2:
                    await asyncio.sleep(0.01)
                for _ in range(50):  # let every request reach the point where it waits
                    await asyncio.sleep(0)

            await asyncio.wait_for(page_reads_started(), 120)
            shared_in_use = shared.borrowed_tokens
            answer = await asyncio.wait_for(client.get("/other"), 120)
            pages_done_before_other = sum(p.done() for p in pages)
            release.set()
            responses = await asyncio.wait_for(asyncio.gather(*pages), 120)
        return requests, shared_in_use, answer, pages_done_before_other, responses

    requests, shared_in_use, answer, pages_done_before_other, responses = asyncio.run(scenario())
    assert answer.status_code == 200 and answer.json() == {"ok": True}
    assert pages_done_before_other == 0, "the other route answered only after page requests finished"
    assert shared_in_use == 0, "page requests held threads of the shared pool"
    assert state["most"] == 2
    assert [r.status_code for r in responses] == [200] * requests
    assert state["calls"] == 2, "the requests that waited were not served from the cache"


def test_a_page_request_past_its_deadline_is_a_503_busy(monkeypatch):
    import threading

    from fastapi.testclient import TestClient

    monkeypatch.setattr(web_app, "_authorize", lambda: (lambda: None))
    monkeypatch.setenv("IAM_AUDIT_PAGE_DEADLINE_SECONDS", "1")
    release = threading.Event()
    monkeypatch.setattr(web_app, "load_compliance", lambda hook=None, params=None: release.wait(300) and {})
    try:
        response = TestClient(web_app.create_app()).get("/api/summary")
    finally:
        release.set()
    assert response.status_code == 503 and "busy" in response.json()["error"]
