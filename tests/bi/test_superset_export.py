"""The Superset dashboard bundle (bi/superset/dashboard): well-formed, on documented views, no secrets,
and every dataset's SQL and metric runs on a real PostgreSQL with the schema applied (as compliance_reader),
so renaming a view column breaks this test, not the dashboard."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

from .results import history

BUNDLE = Path(__file__).resolve().parents[2] / "bi" / "superset" / "dashboard"
DOCUMENTED = {"aws_policy_scores", "aws_policy_latest", "aws_policy_changes", "aws_policy_open_findings",
              "aws_policy_results_effective", "aws_policy_accounts", "aws_policy_controls", "aws_policy_exceptions"}
FILTER_COLUMNS = {"framework", "account_name", "severity"}
PASSWORD_MASK = "XXXXXXXXXX"  # what Superset's exports write in place of a password


def _load(kind: str) -> dict[str, dict]:
    paths = sorted(BUNDLE.glob(f"{kind}/**/*.yaml"))
    return {p.relative_to(BUNDLE).as_posix(): yaml.safe_load(p.read_text()) for p in paths}


DATABASES, DATASETS, CHARTS, DASHBOARDS = (_load(k) for k in ("databases", "datasets", "charts", "dashboards"))
DATASETS_BY_UUID = {d["uuid"]: d for d in DATASETS.values()}


def test_bundle_parses_and_is_a_v1_dashboard_export():
    assert yaml.safe_load((BUNDLE / "metadata.yaml").read_text())["version"] == "1.0.0"
    assert len(DATABASES) == 1 and len(DASHBOARDS) == 1
    assert DATASETS and CHARTS
    for config in [*DATABASES.values(), *DATASETS.values(), *CHARTS.values(), *DASHBOARDS.values()]:
        assert config["version"] == "1.0.0" and config["uuid"]


def test_no_password_in_any_file():
    from sqlalchemy.engine.url import make_url

    for database in DATABASES.values():
        assert make_url(database["sqlalchemy_uri"]).password in (None, PASSWORD_MASK)
        assert not database.get("password")
    for path in BUNDLE.rglob("*"):
        if path.is_file():
            assert not re.search(r"^\s*(password|encrypted_extra)\s*:\s*\S", path.read_text(), re.MULTILINE), path


def _relations(query: str) -> set[str]:
    return {name.lower() for name in re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)", query)}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_datasets_read_only_documented_views(name):
    dataset = DATASETS[name]
    relations = _relations(dataset["sql"])
    assert relations, f"{name}: no relation found in its SQL"
    assert relations <= DOCUMENTED, f"{name} reads {relations - DOCUMENTED}"
    assert "iam_stage" not in dataset["sql"]
    assert dataset["database_uuid"] in {d["uuid"] for d in DATABASES.values()}


def test_references_resolve():
    chart_uuids = {c["uuid"] for c in CHARTS.values()}
    for path, chart in CHARTS.items():
        dataset = DATASETS_BY_UUID.get(chart["dataset_uuid"])
        assert dataset, f"{path}: dataset {chart['dataset_uuid']} is not in the bundle"
        metrics = {m["metric_name"] for m in dataset["metrics"]}
        columns = {c["column_name"] for c in dataset["columns"]}
        params = chart["params"]
        used_metrics = [params["metric"]] if "metric" in params else list(params.get("metrics", []))
        if params.get("timeseries_limit_metric"):
            used_metrics.append(params["timeseries_limit_metric"])
        assert used_metrics and set(used_metrics) <= metrics, f"{path}: unknown metric in {used_metrics}"
        groupby = params.get("groupby", [])
        used_columns = ([groupby] if isinstance(groupby, str) else list(groupby)) + [params.get("x_axis")]
        assert {c for c in used_columns if c} <= columns, f"{path}: unknown column in {used_columns}"
    dashboard = next(iter(DASHBOARDS.values()))
    nodes = dashboard["position"].values()
    placed = {n["meta"]["uuid"] for n in nodes if isinstance(n, dict) and n.get("type") == "CHART"}
    assert placed == chart_uuids, "every chart is on the dashboard, and only those"
    filters = dashboard["metadata"]["native_filter_configuration"]
    assert {f["targets"][0]["column"]["name"] for f in filters} == FILTER_COLUMNS
    for native_filter in filters:
        assert native_filter["targets"][0]["datasetUuid"] in DATASETS_BY_UUID
    for name, dataset in DATASETS.items():  # the filters apply to every chart, so every dataset has their columns
        assert FILTER_COLUMNS <= {c["column_name"] for c in dataset["columns"]}, name


@pytest.fixture()
def reader_conn(db):
    """The test database with a history of verdicts, read as compliance_reader."""
    history(db)
    db.commit()
    db.execute("SET ROLE compliance_reader")
    yield db
    db.execute("RESET ROLE")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_dataset_sql_and_metrics_run_with_the_declared_columns(reader_conn, name):
    dataset = DATASETS[name]
    query = dataset["sql"].strip().rstrip(";")
    cursor = reader_conn.execute(sql.SQL("SELECT * FROM ({}) AS d LIMIT 0").format(sql.SQL(query)))
    assert [c.name for c in cursor.description] == [c["column_name"] for c in dataset["columns"]]
    for metric in dataset["metrics"]:
        reader_conn.execute(sql.SQL("SELECT {} FROM ({}) AS d").format(sql.SQL(metric["expression"]), sql.SQL(query)))
    if dataset.get("main_dttm_col"):
        assert dataset["main_dttm_col"] in {c["column_name"] for c in dataset["columns"] if c["is_dttm"]}


def test_chart_filters_run(reader_conn):
    for chart in CHARTS.values():
        dataset = DATASETS_BY_UUID[chart["dataset_uuid"]]
        for adhoc in chart["params"].get("adhoc_filters", []):
            if adhoc["expressionType"] == "SQL":
                reader_conn.execute(sql.SQL("SELECT count(*) FROM ({}) AS d WHERE {}").format(
                    sql.SQL(dataset["sql"].strip()), sql.SQL(adhoc["sqlExpression"])))


def test_pass_rate_metric_equals_sum_of_counts_for_one_framework(reader_conn):
    """On one framework, the problem-level pass rate is pass / (pass + fail) summed from aws_policy_scores."""
    latest = DATASETS["datasets/aws_iam_compliance/iam_latest.yaml"]
    metric = next(m["expression"] for m in latest["metrics"] if m["metric_name"] == "pass_rate")
    got = reader_conn.execute(sql.SQL("SELECT {} FROM ({}) AS d WHERE framework = 'cis_v3.0.0'").format(
        sql.SQL(metric), sql.SQL(latest["sql"].strip()))).fetchone()[0]
    want = reader_conn.execute(
        """SELECT 1.0 * sum(pass_count) / nullif(sum(pass_count) + sum(fail_count), 0) FROM aws_policy_scores s
           WHERE framework = 'cis_v3.0.0' AND snapshot_date = (SELECT max(snapshot_date) FROM aws_policy_scores
                                                                WHERE account_id = s.account_id)""").fetchone()[0]
    assert got is not None and float(got) == pytest.approx(float(want))


def test_tcp_listener_takes_password_logins_only(tmp_path):
    """The embedded server's TCP listener: a compliance_reader login with its password reads the views."""
    from iam_audit_dev.devenv.postgres import start_postgres

    pg = start_postgres(tmp_path / "pg", tcp=True)
    try:
        assert pg.tcp_host == "127.0.0.1" and pg.port
        with pg.connect(autocommit=True) as conn:
            conn.execute("CREATE ROLE compliance_reader NOLOGIN")
            conn.execute("CREATE TABLE aws_policy_results (x int)")
            conn.execute("GRANT SELECT ON aws_policy_results TO compliance_reader")
        password = pg.ensure_login("bi_test", "compliance_reader", tmp_path / "bi_test.password")
        assert (tmp_path / "bi_test.password").stat().st_mode & 0o077 == 0
        assert pg.ensure_login("bi_test", "compliance_reader", tmp_path / "bi_test.password") == password
        with psycopg.connect(pg.tcp_uri("bi_test", password, "postgres")) as conn:
            assert conn.execute("SELECT count(*) FROM aws_policy_results").fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE TABLE t (x int)")
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres")
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(f"host=127.0.0.1 port={pg.port} user=bi_test password=wrong dbname=postgres")
        assert start_postgres(tmp_path / "pg", tcp=True).port == pg.port  # reused, not restarted elsewhere
    finally:
        pg.stop()
    assert not (tmp_path / "pg" / "postmaster.pid").exists()


def test_no_table_chart_renders_cell_html():
    """Superset's table chart renders a cell's HTML unless allow_render_html is false; account names and
    IAM paths are chosen by whoever controls a member account, so a link or image there must stay text."""
    tables = {name: chart for name, chart in CHARTS.items() if chart["viz_type"] == "table"}
    assert tables
    for name, chart in tables.items():
        assert chart["params"].get("allow_render_html") is False, name


def test_oldest_open_findings_show_the_controls_title_not_its_logic_id(reader_conn):
    chart = next(c for c in CHARTS.values() if c["slice_name"] == "Oldest open findings")
    assert "control_title" in chart["params"]["groupby"] and "control_logic" not in chart["params"]["groupby"]
    dataset = DATASETS_BY_UUID[chart["dataset_uuid"]]
    rows = reader_conn.execute(sql.SQL("SELECT DISTINCT control_logic, control_title FROM ({}) AS d").format(
        sql.SQL(dataset["sql"].strip()))).fetchall()
    assert rows
    from iam_audit.evaluate.catalogue import load_catalogue

    newest = {}
    for check in load_catalogue().checks:
        cis = sorted((c for c in check.controls if c.framework.startswith("cis_")), key=lambda c: c.framework)
        newest[check.logic] = (cis or check.controls)[-1].title
    for logic, title in rows:
        assert title == newest[logic] and title != logic


def _chart(name: str) -> dict:
    return next(c for c in CHARTS.values() if c["slice_name"] == name)


def _placed(name: str) -> dict:
    nodes = next(iter(DASHBOARDS.values()))["position"].values()
    return next(n for n in nodes if isinstance(n, dict) and n.get("type") == "CHART"
                and n["meta"]["sliceName"] == name)


def test_oldest_open_findings_fit_the_row_limit_and_the_tile(reader_conn):
    """Superset marks a table "row limit reached" when the result has row_limit rows: the chart's grouped
    query over the test history must stay below it with room to spare, and its columns get the full grid."""
    chart = _chart("Oldest open findings")
    params = chart["params"]
    dataset = DATASETS_BY_UUID[chart["dataset_uuid"]]
    groups = sql.SQL(", ").join(sql.Identifier(c) for c in params["groupby"])
    rows = reader_conn.execute(sql.SQL("SELECT count(*) FROM (SELECT 1 FROM ({}) AS d GROUP BY {}) AS g").format(
        sql.SQL(dataset["sql"].strip()), groups)).fetchone()[0]
    assert rows > 0
    assert params["row_limit"] >= 100 * rows, (params["row_limit"], rows)
    assert params["server_pagination"] is False and 0 < params["page_length"] < params["row_limit"]
    assert params["timeseries_limit_metric"] == "max_age_days" and params["order_desc"] is True  # oldest first
    assert params["allow_render_html"] is False
    # column widths only for columns the table shows, the title among them
    shown = set(params["groupby"]) | set(params["metrics"])
    assert "control_title" in params["column_config"] and set(params["column_config"]) <= shown
    assert _placed("Oldest open findings")["meta"]["width"] == 12  # the dashboard grid is 12 wide


def test_heat_map_labels_every_account_and_control():
    params = _chart("Pass rate: controls × accounts")["params"]
    assert params["xscale_interval"] == 1 and params["yscale_interval"] == 1  # 'auto' drops overlapping labels
    assert params["x_axis_label_rotation"] in (45, 90)
    assert isinstance(params["left_margin"], int) and params["left_margin"] >= 200
