"""Lineage datasets of the check operator and of the TaskFlow tasks, as OpenLineage names them."""

import json

import pytest

from iam_audit.export.lineage import VERDICT_TABLES, postgres_uri, report, s3_uri, staging_tables
from iam_audit.tasks import CheckOperator

PG = {"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "schema": "compliance", "login": "u",
      "password": "p"}


@pytest.fixture()
def postgres_conn(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LINEAGE_PG", json.dumps(PG))
    return "lineage_pg"


def test_check_operator_names_its_staging_tables_and_the_verdict_history(postgres_conn):
    op = CheckOperator(task_id="check_console_users_mfa", conn_id=postgres_conn, sql="SELECT 1",
                       needs=("credential_report", "authorization_details"))
    lineage = op.get_openlineage_facets_on_complete(None)
    names = {(d.namespace, d.name) for d in lineage.inputs}
    assert ("postgres://127.0.0.1:1", "compliance.iam_stage.credential_report") in names
    assert ("postgres://127.0.0.1:1", "compliance.iam_stage.users") in names
    assert ("postgres://127.0.0.1:1", "compliance.iam_stage.password_policy") not in names
    assert {(d.namespace, d.name) for d in lineage.outputs} == {
        ("postgres://127.0.0.1:1", f"compliance.public.{t}") for t in VERDICT_TABLES}


def test_a_unix_socket_connection_is_named_localhost(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SOCKET_PG", json.dumps({**PG, "host": "/run/postgresql", "port": 5432}))
    assert postgres_uri("socket_pg", "iam_stage", "users") == "postgres://localhost:5432/compliance/iam_stage/users"


def test_staging_tables_of_data_sets():
    assert staging_tables(["access_analyzers"]) == ["accounts", "extraction_status", "access_analyzers",
                                                    "access_analyzer_regions"]


def test_taskflow_lineage_goes_to_the_hook_lineage_collector_as_openlineage_datasets(postgres_conn, monkeypatch):
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset
    from airflow.sdk import lineage as sdk_lineage

    collector = sdk_lineage.HookLineageCollector()
    monkeypatch.setattr(sdk_lineage, "get_hook_lineage_collector", lambda: collector)
    context = object()
    report(context, inputs=[s3_uri("raw-bucket", "iam", "credential_report")],
           outputs=[postgres_uri(postgres_conn, "iam_stage", "credential_report")])
    collected = collector.collected_assets
    translate = lambda infos: {(d.namespace, d.name) for i in infos  # noqa: E731
                               if (d := translate_airflow_asset(i.asset, i.context))}
    assert translate(collected.inputs) == {("s3://raw-bucket", "iam/credential_report")}
    assert translate(collected.outputs) == {("postgres://127.0.0.1:1", "compliance.iam_stage.credential_report")}


def test_a_dataset_that_cannot_be_named_never_fails_the_task(monkeypatch, caplog):
    from airflow.sdk import lineage as sdk_lineage

    collector = sdk_lineage.HookLineageCollector()
    monkeypatch.setattr(sdk_lineage, "get_hook_lineage_collector", lambda: collector)
    report(object(), inputs=["postgres://"])             # the postgres provider refuses this URI
    assert "lineage not reported" in caplog.text


def test_without_a_configured_transport_nothing_is_collected():
    """The provider is installed here but has no transport: it stays off, and Airflow's collector is the no-op."""
    from airflow.providers.openlineage.conf import is_disabled
    from airflow.sdk.lineage import NoOpCollector, get_hook_lineage_collector

    assert is_disabled()
    assert isinstance(get_hook_lineage_collector(), NoOpCollector)
