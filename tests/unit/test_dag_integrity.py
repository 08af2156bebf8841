"""The DAG parses, keeps its contract and has one task per check logic."""

import pytest

from iam_audit.evaluate.catalogue import load_catalogue
from iam_audit.paths import CHECKS_DIR


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PROJECT_ROOT

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags["aws_iam_cis"]


def test_contract(dag):
    assert dag.dag_id == "aws_iam_cis"
    assert dag.catchup is False
    assert dag.schedule == "@daily"
    assert {"security", "cis"} <= set(dag.tags)
    assert dag.owner == "security-data"


def test_one_task_per_check_file(dag):
    files = {p.stem for p in CHECKS_DIR.glob("*.sql")}
    tasks = {t.task_id.removeprefix("check_") for t in dag.tasks if t.task_id.startswith("check_")}
    assert files == tasks
    assert files == {c.logic for c in load_catalogue().checks}
    for logic in files:
        task = dag.get_task(f"check_{logic}")
        assert task.sql.startswith(f"-- {logic}")  # the file, resolved from template_searchpath
        assert task.conn_id == "postgres_default"
        assert task.trigger_rule == "none_skipped"
        assert task.doc_md and "**Numbers:**" in task.doc_md


def test_flow(dag):
    assert dag.get_task("extract_account").map_index_template == "{{ account_label }}"
    assert dag.get_task("load_staging").upstream_task_ids >= {"extract_account", "discover_accounts", "plan_run"}
    assert "prepare_database" in dag.get_task("discover_accounts").upstream_task_ids
    # extract_account maps over the batches of Variable iam_audit_accounts_per_task (one account each by default)
    assert dag.get_task("batch_accounts").upstream_task_ids == {"plan_run", "discover_accounts"}
    assert dag.get_task("extract_account").upstream_task_ids >= {"batch_accounts"}
    assert dag.get_task("load_staging").trigger_rule == "all_done"
    watcher = dag.get_task("fail_run_on_task_failure")
    assert watcher.trigger_rule == "one_failed"
    assert {t.task_id for t in dag.tasks} - {watcher.task_id} <= watcher.upstream_task_ids
    # alerts after every check, whatever the report and summary do
    checks = {t.task_id for t in dag.tasks if t.task_id.startswith("check_")}
    assert dag.get_task("send_alerts").upstream_task_ids == checks | {"plan_run"}
    assert dag.get_task("send_alerts").trigger_rule == "none_skipped"
    assert "send_alerts" in dag.get_task("summarize").upstream_task_ids   # the summary reports the alerts
    # acyclic: a topological sort covers every task
    assert len(dag.topological_sort()) == len(dag.tasks)


def test_params_are_validated_by_json_schema(dag):
    from airflow.sdk.definitions.param import ParamValidationError

    accounts = dag.params.get_param("accounts")
    assert accounts.resolve(["111122223333"]) == ["111122223333"]
    with pytest.raises(ParamValidationError):
        accounts.resolve(["not-an-id"])
    with pytest.raises(ParamValidationError):
        dag.params.get_param("frameworks").resolve(["cis_v9.9.9"])
    assert dag.params.get_param("mode").resolve("replay") == "replay"


def test_aws_work_runs_in_the_pool_and_failures_call_back(dag):
    assert dag.get_task("extract_account").pool == "iam_audit_aws"
    assert dag.get_task("discover_accounts").pool == "iam_audit_aws"
    assert dag.on_failure_callback is not None
    assert "publish_report" in {t.task_id for t in dag.tasks}


def test_checks_get_only_snapshot_date_run_id_and_frameworks(dag):
    """Never the whole plan: operators render their parameters into the metadata DB and log them."""
    plan_run = dag.get_task("plan_run")
    assert plan_run.multiple_outputs
    for task in dag.tasks:
        if task.task_id.startswith("check_"):
            assert task.parameters.operator is plan_run and task.parameters.key == "check_params"
def test_no_run_or_task_can_hang_forever(dag):
    assert dag.dagrun_timeout is not None and dag.dagrun_timeout.total_seconds() > 0
    for task in dag.tasks:
        assert task.execution_timeout is not None, f"{task.task_id} has no execution_timeout"
    for task in (t for t in dag.tasks if t.task_id.startswith("check_")):
        options = task.hook_params["options"]
        assert "lock_timeout=" in options and "statement_timeout=" in options, task.task_id
        assert "iam_audit.date_lock_timeout=" in options


def test_timeouts_are_configurable_and_read_at_every_parse(monkeypatch):
    from iam_audit.dag import aws_iam_cis
    from iam_audit.database import session_options

    monkeypatch.setenv("IAM_AUDIT_DAGRUN_TIMEOUT_MINUTES", "90")
    monkeypatch.setenv("IAM_AUDIT_TASK_TIMEOUT_MINUTES", "7")
    monkeypatch.setenv("IAM_AUDIT_DB_STATEMENT_TIMEOUT", "2min")
    dag = aws_iam_cis()
    assert dag.dagrun_timeout.total_seconds() == 90 * 60
    assert dag.get_task("plan_run").execution_timeout.total_seconds() == 7 * 60
    assert "statement_timeout=2min" in session_options()
    # a later parse in the same process (a DAG processor that pre-imported the package) reads them again
    monkeypatch.setenv("IAM_AUDIT_DAGRUN_TIMEOUT_MINUTES", "30")
    assert aws_iam_cis().dagrun_timeout.total_seconds() == 30 * 60
