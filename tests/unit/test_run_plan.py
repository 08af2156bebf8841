"""RunPlan through XCom: to_xcom gives JSON types without the external id, from_xcom gives the same plan
back and refuses a missing, unknown or ill-typed key by its name."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import date

import pytest

from iam_audit.config import AuditConfig
from iam_audit.plan import CONFIG_NOT_IN_XCOM, PlanError, RunPlan

PLAN = RunPlan(
    snapshot_date=date(2026, 11, 29), run_id="scheduled__2026-11-29", mode="live",
    config=AuditConfig(bucket="audit-bucket", external_id="plan-external-id-77d1", accounts=("111122223333",),
                       kms_key_id="alias/audit", retention_days=30, accounts_per_task=5,
                       warnings=("Variable iam_audit_bucket_owner is not set",)),
    frameworks=("cis_v1.2.0", "cis_v7.0.0"), requested_accounts=("111122223333",),
    warnings=("Variable iam_audit_bucket_owner is not set",))


def test_the_xcom_is_json_and_comes_back_as_the_same_plan_without_the_external_id():
    xcom = PLAN.to_xcom()
    assert json.loads(json.dumps(xcom)) == xcom
    assert "plan-external-id-77d1" not in json.dumps(xcom)
    back = RunPlan.from_xcom(json.loads(json.dumps(xcom)))
    assert back.config.external_id is None
    assert back == RunPlan(**{**{f.name: getattr(PLAN, f.name) for f in fields(RunPlan)},
                              "config": AuditConfig(**{**{f.name: getattr(PLAN.config, f.name)
                                                          for f in fields(AuditConfig)}, "external_id": None})})
    assert back.snapshot_date == date(2026, 11, 29) and back.config.accounts == ("111122223333",)
    assert xcom["check_params"] == {"snapshot_date": "2026-11-29", "run_id": "scheduled__2026-11-29",
                                    "frameworks": ["cis_v1.2.0", "cis_v7.0.0"]}
    assert RunPlan.from_xcom(back) is back


def test_every_config_field_but_the_secret_travels():
    """A field added to AuditConfig must be added to the plan's checks (or kept out on purpose)."""
    xcom_keys = set(PLAN.to_xcom()["config"])
    assert xcom_keys == {f.name for f in fields(AuditConfig)} - CONFIG_NOT_IN_XCOM
    assert "external_id" in CONFIG_NOT_IN_XCOM
    RunPlan.from_xcom(PLAN.to_xcom())  # and from_xcom accepts exactly these


@pytest.mark.parametrize(("change", "message"), [
    (lambda x: x.pop("run_id"), "plan has no key 'run_id'"),
    (lambda x: x.update(config_version=2), "plan has unknown key 'config_version'"),
    (lambda x: x["config"].pop("prefix"), "plan key 'config' has no key 'prefix'"),
    (lambda x: x["config"].update(external_id="leaked"), "plan key 'config' has unknown key 'external_id'"),
    (lambda x: x.update(snapshot_date="29/11/2026"), "plan key 'snapshot_date' must be a date YYYY-MM-DD"),
    (lambda x: x.update(mode="sometimes"), "plan key 'mode' must be one of live, replay"),
    (lambda x: x.update(frameworks="cis_v1.2.0"), "plan key 'frameworks' must be a list of strings"),
    (lambda x: x["config"].update(accounts_per_task="5"), "plan key 'config.accounts_per_task' must be int"),
    (lambda x: x["config"].update(allow_unhashed_manifests=1),
     "plan key 'config.allow_unhashed_manifests' must be bool"),
    (lambda x: x["config"].update(retention_days=True), "plan key 'config.retention_days' must be int or null"),
    (lambda x: x["check_params"].update(run_id="another"), "plan key 'check_params'"),
])
def test_from_xcom_names_what_is_wrong(change, message):
    xcom = PLAN.to_xcom()
    change(xcom)
    with pytest.raises(PlanError) as err:
        RunPlan.from_xcom(xcom)
    assert message in str(err.value)


def test_a_missing_plan_is_refused():
    with pytest.raises(PlanError, match="must be the mapping plan_run returns, got NoneType"):
        RunPlan.from_xcom(None)


def test_a_task_given_an_unusable_plan_fails_at_once_naming_the_key():
    from airflow.sdk.exceptions import AirflowFailException

    from iam_audit import tasks

    xcom = PLAN.to_xcom()
    assert tasks.batch_accounts(xcom, [{"account_id": str(n) * 12} for n in range(7)])[0][4]["account_id"] == "4" * 12
    del xcom["config"]["accounts_per_task"]
    with pytest.raises(AirflowFailException, match="'config' has no key 'accounts_per_task'"):
        tasks.batch_accounts(xcom, [])
