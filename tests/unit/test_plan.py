"""plan_run with Airflow Variables given as AIRFLOW_VAR_* environment variables."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from iam_audit import tasks
from iam_audit.config import ConfigError


def context(logical_date, **params):
    return {"params": {"mode": "auto", "frameworks": [], "accounts": [], **params}, "logical_date": logical_date,
            "dag_run": SimpleNamespace(run_after=datetime(2026, 11, 29, 3, 0, tzinfo=UTC)), "run_id": "manual__x"}


def test_a_run_without_logical_date_snapshots_its_run_after_date(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_IAM_AUDIT_BUCKET", "audit-bucket")
    plan = tasks.plan_run(context(None))
    assert plan["snapshot_date"] == "2026-11-29"
    assert plan["config"]["bucket"] == "audit-bucket" and plan["config"]["role_name"] == "IamAuditReadOnly"
    assert "cis_v3.0.0" in plan["frameworks"] and "iam_hygiene" in plan["frameworks"]


def test_past_logical_date_is_a_replay_and_params_are_validated(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_IAM_AUDIT_BUCKET", "audit-bucket")
    plan = tasks.plan_run(context(datetime(2026, 1, 5, tzinfo=UTC), frameworks=["cis_v1.2.0"]))
    assert plan["mode"] == "replay" and plan["frameworks"] == ["cis_v1.2.0"]
    with pytest.raises(ConfigError, match="param accounts"):
        tasks.plan_run(context(None, accounts=["123"]))
    monkeypatch.setenv("AIRFLOW_VAR_IAM_AUDIT_ACCOUNTS", '["111122223333", "111122223333"]')
    assert tasks.plan_run(context(None))["config"]["accounts"] == ["111122223333"]


def test_the_plan_never_carries_the_external_id_and_it_is_masked(monkeypatch):
    from airflow.sdk.log import redact

    secret = "plan-external-id-4f1c9a"
    monkeypatch.setenv("AIRFLOW_VAR_IAM_AUDIT_BUCKET", "audit-bucket")
    monkeypatch.setenv("AIRFLOW_VAR_IAM_AUDIT_EXTERNAL_ID", secret)
    plan = tasks.plan_run(context(None))
    assert secret not in repr(plan)
    assert plan["check_params"] == {"snapshot_date": "2026-11-29", "run_id": "manual__x",
                                    "frameworks": plan["frameworks"]}
    assert secret not in redact(f"AssumeRole ExternalId={secret}")
    monkeypatch.setenv("AIRFLOW_VAR_IAM_AUDIT_EXTERNAL_ID", "bad id;")
    with pytest.raises(ConfigError, match="iam_audit_external_id"):
        tasks.plan_run(context(None))
