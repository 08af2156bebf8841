"""`make demo`'s history: earlier snapshots derived from a live run's stored one, evaluated by the pipeline's
replay (the DAG's task bodies and check SQL, no IAM call), give non-empty changes and a trend."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from iam_audit_dev.devenv import history
from iam_audit_dev.devenv.stack import Stack

from tests.conftest import TEST_STATE

pytestmark = pytest.mark.e2e


def test_the_demo_history_has_changes_a_trend_and_an_expiring_exception(first_run, e2e_stack, today, monkeypatch):
    # a database and bucket of its own, with the live run's raw snapshot of today copied in
    database = f"history_{uuid.uuid4().hex[:8]}"
    e2e_stack.postgres.create_database(database)
    stack = Stack(postgres=e2e_stack.postgres, emulator_url=e2e_stack.emulator_url, state_dir=TEST_STATE,
                  bucket=f"history-{uuid.uuid4().hex[:8]}", database=database, emulator=e2e_stack.emulator)
    s3 = stack.boto3_client("s3")
    s3.create_bucket(Bucket=stack.bucket)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=e2e_stack.bucket,
                                                             Prefix=f"iam/snapshot_date={today}/"):
        for o in page.get("Contents", []):
            s3.copy_object(Bucket=stack.bucket, Key=o["Key"], CopySource={"Bucket": e2e_stack.bucket, "Key": o["Key"]},
                           ServerSideEncryption="AES256")
    env = {**e2e_stack.env, **{k: v for k, v in stack.airflow_env(airflow_home=TEST_STATE / f"airflow-{database}")
                               .items() if k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from iam_audit.database import apply_schema

    with stack.postgres.connect(database) as conn:
        apply_schema(conn)
        conn.commit()

    day = date.fromisoformat(today)
    days = history.write_history(s3, stack.bucket, day, days=3)
    assert days == [day - timedelta(days=k) for k in (3, 2, 1)]
    e2e_stack.emulator.reset_calls()
    for d in [*days, day]:  # today too, from its stored snapshot: the same replay
        assert history.replay(d, lambda: stack.postgres.connect(database))["loaded"] > 0
    # a replay makes no IAM call: S3, and STS GetCallerIdentity for the bucket's expected owner
    calls = {(c["service"], c["action"]) for c in e2e_stack.emulator.calls() if c["service"] != "s3"}
    assert calls <= {("sts", "GetCallerIdentity")}, calls

    with stack.postgres.connect(database) as conn:
        muted = history.mute_one_finding(conn, day)
        assert muted is not None and history.mute_one_finding(conn, day) is None  # once
        changes = dict(conn.execute(
            "SELECT change_type, count(*) FROM aws_policy_changes WHERE snapshot_date = %s GROUP BY 1",
            (day,)).fetchall())
        trend = conn.execute("SELECT snapshot_date, fail_count, pass_count, muted_count FROM aws_policy_headline "
                             "WHERE scope = 'all' ORDER BY 1").fetchall()
    assert changes.get("newly_failing", 0) > 0 and changes.get("resolved", 0) > 0, changes
    assert [d for d, *_ in trend] == [*days, day]
    assert len({(f, p) for _, f, p, _ in trend}) > 1, "the trend moves"
    assert trend[-1][3] == 1, "the exception mutes one finding today"
