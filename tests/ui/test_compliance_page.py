"""The Compliance page plugin without a browser: registration, data and rendering."""

from __future__ import annotations

from plugins import compliance_plugin as cp


def real_hook(postgres, database, monkeypatch):
    """A PostgresHook on the test database, through the postgres_default connection like the plugin."""
    import json

    from airflow.providers.postgres.hooks.postgres import PostgresHook

    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", json.dumps(
        {"conn_type": "postgres", "host": postgres.socket_dir, "login": "postgres", "schema": database}))
    return PostgresHook(postgres_conn_id="postgres_default")


RUN = "scheduled__2026-11-28T00:00:00+00:00"


def test_plugin_registers_app_and_nav_view():
    plugin = cp.CompliancePlugin
    assert plugin.fastapi_apps[0]["url_prefix"] == "/compliance"
    view = plugin.external_views[0]
    assert view["name"] == "Compliance" and view["url_route"] == "compliance"
    assert not view["href"].startswith("/")


def test_no_results_yet(postgres, database, monkeypatch):
    html = cp.render_page(cp.load_compliance(real_hook(postgres, database, monkeypatch)))
    assert 'id="no-results"' in html and "No results yet" in html


def test_database_error_is_shown_not_raised():
    html = cp.render_page(None, error="OperationalError: connection refused")
    assert 'id="error"' in html and "postgres_default" in html


def test_scores_findings_and_trend(db, postgres, database, monkeypatch):
    rows = []
    for day, run, fails in (("2026-11-27", "scheduled__2026-11-27T00:00:00+00:00", 3),
                            ("2026-11-28", RUN, 2)):
        for n in range(10):
            rows.append((day, "cis_v3.0.0", "1.10", "MFA", "high", "111111111111", f"user-{n}", "iam_user",
                         "fail" if n < fails else "pass", f"user-{n} has no MFA", run))
        for n in range(10):
            rows.append((day, "cis_v1.2.0", "1.2", "MFA", "high", "111111111111", f"user-{n}", "iam_user",
                         "fail" if n < 1 else "pass", f"user-{n} has no MFA", run))
    rows.append(("2026-11-28", "cis_v3.0.0", "1.5", "Root MFA", "critical", "111111111111", "111111111111",
                 "account", "fail", "no MFA", RUN))
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO aws_policy_results (snapshot_date, framework, check_id, title, severity, account_id, "
            "resource_id, resource_type, status, reason, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows)
        cur.execute("INSERT INTO iam_stage.accounts (snapshot_date, account_id, account_name, extracted_at) "
                    "VALUES ('2026-11-28', '111111111111', 'prod <core>', now())")
    db.commit()
    hook = real_hook(postgres, database, monkeypatch)
    data = cp.load_compliance(hook)
    assert data["available"] and data["frameworks"] == ["cis_v1.2.0", "cis_v3.0.0"]
    rates = {score["framework"]: score["pass_rate"] for score in data["scores"]}
    assert rates["cis_v1.2.0"] == 90.0
    html = cp.render_page(data)
    assert "prod &lt;core&gt;" in html  # escaped
    assert f"{rates['cis_v3.0.0']:.1f}%" in html and "90.0%" in html
    assert 'href="../dags/aws_iam_cis/runs/scheduled__2026-11-28T00%3A00%3A00%2B00%3A00"' in html
    assert 'id="trend-chart"' in html and "<polyline" in html
