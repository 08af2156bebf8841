"""OpenLineage: a DAG run with the provider's file transport names the datasets each task reads and writes.

In make test-extended (one more whole-DAG run). Without a transport the provider stays off, which every
other run of the suite shows: their tasks behave as before."""

from __future__ import annotations

import json

import pytest
from iam_audit_dev.devenv.runner import run_dag

from iam_audit.export.lineage import VERDICT_TABLES

pytestmark = [pytest.mark.e2e, pytest.mark.extended]


def _events(path) -> dict[str, dict]:
    """The COMPLETE event of each task (job name ends with the task id; mapped tasks: the last one)."""
    out = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event.get("eventType") == "COMPLETE" and "." in event["job"]["name"]:
            out[event["job"]["name"].split(".", 1)[1]] = event
    return out


def _names(datasets) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in datasets}


def test_a_run_emits_the_lineage_of_its_tasks(e2e_stack, today, tmp_path):
    pytest.importorskip("airflow.providers.openlineage")
    events_file = tmp_path / "openlineage.jsonl"
    # `airflow dags test` runs every task in one process, so Airflow's hook lineage collector (one per
    # process) accumulates across tasks and the provider works through all of it after each task: give
    # it time (10 s by default). Under an executor each task is a process of its own.
    env = {**e2e_stack.env, "AIRFLOW__OPENLINEAGE__NAMESPACE": "iam-audit-test",
           "AIRFLOW__OPENLINEAGE__EXECUTION_TIMEOUT": "120",
           "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events_file),
                                                          "append": True})}
    result = run_dag(env, logical_date=today, log_file=tmp_path / "run.log", progress=None)
    assert result.state == "success", (result.failed_tasks, result.log_file)
    events = _events(events_file)
    postgres_ns = {ns for ns, _ in _names(events["check_console_users_mfa"]["inputs"])}
    assert len(postgres_ns) == 1 and next(iter(postgres_ns)).startswith("postgres://")
    pg = next(iter(postgres_ns))
    db = e2e_stack.database
    raw = f"s3://{e2e_stack.bucket}"

    check = events["check_console_users_mfa"]
    assert (pg, f"{db}.iam_stage.credential_report") in _names(check["inputs"])
    assert _names(check["outputs"]) == {(pg, f"{db}.public.{t}") for t in VERDICT_TABLES}
    load = events["load_staging"]
    assert (raw, "iam/credential_report") in _names(load["inputs"])
    assert (pg, f"{db}.iam_stage.users") in _names(load["outputs"])
    assert (raw, "iam/authorization_details") in _names(events["extract_account"]["outputs"])
    # TaskFlow tasks report through the per-process collector: in one process, earlier tasks' datasets too
    assert (pg, f"{db}.public.aws_policy_results") in _names(events["export_ocsf"]["inputs"])
    assert (raw, "iam/exports/ocsf") in _names(events["export_ocsf"]["outputs"])
    assert (pg, f"{db}.public.aws_policy_results") in _names(events["summarize"]["inputs"])
