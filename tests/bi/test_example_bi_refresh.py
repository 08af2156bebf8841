"""The example Asset consumer DAG parses, listens to aws_policy_results and its SQL works."""

from decimal import Decimal

import pytest

from .results import D1, D2, D3, A, B, add_exception, history, query


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PROJECT_ROOT

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "example_bi_refresh.py"))
    assert bag.import_errors == {}
    return bag


def test_dag_is_scheduled_on_the_results_asset(bag):
    dag = bag.dags["example_bi_refresh"]
    assert "example" in dag.tags
    assert dag.catchup is False
    assets = dag.timetable.asset_condition.objects
    assert [(asset.name, asset.uri) for asset in assets] == [
        ("aws_policy_results", "iam-audit://postgres_default/public/aws_policy_results")]
    assert "compliance_reader" in dag.doc_md


def test_refresh_sql_builds_and_refreshes_the_extract(bag, db):
    task = bag.dags["example_bi_refresh"].get_task("refresh_bi_compliance_daily")
    history(db)

    def run():
        for statement in task.sql:
            db.execute(statement)
        db.commit()

    run()
    add_exception(db, resource_pattern="%/alice", expires_on=D3)
    run()   # idempotent: the second run refreshes
    rows = {(r["snapshot_date"], r["account_id"]): r for r in query(db, "SELECT * FROM bi_compliance_daily")}
    assert set(rows) == {(D1, A), (D2, A), (D3, A), (D1, B), (D2, B), (D3, B)}
    d3 = rows[(D3, A)]
    assert (d3["pass_count"], d3["fail_count"], d3["muted_count"], d3["pass_rate"]) == (0, 4, 1, Decimal(0))
    assert rows[(D2, B)]["pass_rate"] is None
    assert db.execute("SELECT has_table_privilege('compliance_reader', 'bi_compliance_daily', 'SELECT')"
                      ).fetchone() == (True,)
