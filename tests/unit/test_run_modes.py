"""One rule for mode=auto, stated the same in the code, the DAG docs and the trigger form;
live runs for past dates refused unless asked for explicitly."""

import re
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest

from iam_audit import tasks
from iam_audit.config import ConfigError
from iam_audit.run_modes import AUTO_RULE, OVERRIDE_PARAM, run_mode
from tests.conftest import PROJECT_ROOT

TODAY = date(2026, 11, 29)


def test_auto_is_live_for_today_and_replay_for_any_earlier_date():
    assert run_mode("auto", TODAY, TODAY) == "live"
    assert run_mode("auto", date(2026, 11, 28), TODAY) == "replay"  # yesterday too: its snapshot exists
    assert run_mode("auto", date(2026, 1, 1), TODAY) == "replay"
    assert run_mode("replay", TODAY, TODAY) == "replay"
    with pytest.raises(ConfigError, match="must be one of"):
        run_mode("sometimes", TODAY, TODAY)


def test_live_for_a_past_date_needs_the_override():
    assert run_mode("live", TODAY, TODAY) == "live"
    with pytest.raises(ConfigError, match=f"{OVERRIDE_PARAM}=true"):
        run_mode("live", date(2026, 11, 28), TODAY)
    assert run_mode("live", date(2026, 11, 28), TODAY, overwrite_past_snapshot=True) == "live"


def test_plan_run_refuses_live_for_a_past_date_unless_overridden(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_IAM_AUDIT_BUCKET", "audit-bucket")

    def context(**params):
        return {"params": {"mode": "live", "frameworks": [], "accounts": [], **params},
                "logical_date": datetime(2026, 1, 5, tzinfo=UTC), "run_id": "manual__x",
                "dag_run": SimpleNamespace(run_after=datetime(2026, 1, 5, tzinfo=UTC))}

    with pytest.raises(ConfigError, match="would replace that date's stored snapshot"):
        tasks.plan_run(context())
    assert tasks.plan_run(context(**{OVERRIDE_PARAM: True}))["mode"] == "live"


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_the_rule_is_stated_identically_everywhere():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["aws_iam_cis"]
    assert AUTO_RULE in _squash(dag.doc_md)
    assert AUTO_RULE in dag.params.get_param("mode").description
    assert OVERRIDE_PARAM in dag.params
    # no other wording of the rule survives
    for stale in ("last two days", "live for today, replay for past dates", "a past date means replay"):
        assert stale not in _squash(dag.doc_md)
