"""One click on the Trigger form, with its "Unpause on trigger" ticked as it is by default, gives one run:
the triggered one. Done as the UI does it, through the REST API, with a scheduler that creates scheduled
runs, on a metadata database of its own (no earlier scheduled or backfill run of the DAG)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from iam_audit_dev.devenv import services as services_mod
from iam_audit_dev.devenv.runner import DAG_ID, migrate
from iam_audit_dev.devenv.stack import Stack

from tests.conftest import TEST_STATE
from tests.e2e.conftest import EXTERNAL_ID

pytestmark = [pytest.mark.e2e, pytest.mark.scheduler]


def test_trigger_with_unpause_gives_one_run_and_the_schedule_starts_at_the_next_midnight(postgres, seeded_emulator):
    database = f"trigger_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    stack = Stack(postgres=postgres, emulator_url=seeded_emulator.url, state_dir=TEST_STATE,
                  bucket=f"trigger-{uuid.uuid4().hex[:8]}", database=database, emulator=seeded_emulator)
    stack.boto3_client("s3").create_bucket(Bucket=stack.bucket)
    seeded_emulator.deny_unencrypted_puts(stack.bucket)
    env = stack.airflow_env(airflow_home=TEST_STATE / f"airflow-{database}")
    env["AIRFLOW_VAR_IAM_AUDIT_EXTERNAL_ID"] = EXTERNAL_ID
    migrate(env)

    services = services_mod.start(env, services_mod.BACKFILL_COMPONENTS, schedule=True)
    try:
        services.wait_ready()
        assert services.api("GET", f"/dags/{DAG_ID}")["is_paused"], "the DAG starts paused"
        # What the Trigger form sends with "Unpause aws_iam_cis on trigger" ticked.
        services.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
        now = datetime.now(UTC)
        triggered = services.api("POST", f"/dags/{DAG_ID}/dagRuns",
                                 {"logical_date": now.isoformat(), "conf": {}}, attempts=1)
        state = triggered["state"]
        while state not in ("success", "failed"):
            services.check_alive()
            time.sleep(2)
            state = services.api("GET", f"/dags/{DAG_ID}/dagRuns/{triggered['dag_run_id']}")["state"]
        assert state == "success", f"logs under {services.home / 'logs'}"

        runs = services.api("GET", f"/dags/{DAG_ID}/dagRuns?limit=100")["dag_runs"]
        assert [(r["dag_run_id"], r["run_type"]) for r in runs] == [(triggered["dag_run_id"], "manual")]
        dag = services.api("GET", f"/dags/{DAG_ID}")
        assert not dag["is_paused"]
        tomorrow = (now + timedelta(days=1)).date().isoformat()
        assert dag["next_dagrun_run_after"].startswith(f"{tomorrow}T00:00:00"), dag["next_dagrun_run_after"]
    finally:
        services.stop()
