"""`make backfill` is an Airflow backfill run by a real scheduler: replay only (no IAM call), backfill
runs with real start dates, existing runs rerun as REPROCESS says and never deleted, and a date with
nothing to replay fails with the reason readable in its task log."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from iam_audit_dev.devenv import cli
from iam_audit_dev.devenv.runner import metadata_url, run_dag

from tests.conftest import account_of
from tests.e2e.conftest import fetch_results

pytestmark = [pytest.mark.e2e, pytest.mark.scheduler]


def _runs(env, *days):
    from sqlalchemy import bindparam, create_engine, text

    query = text("SELECT id, run_type, state, start_date, logical_date, backfill_id FROM dag_run "
                 "WHERE dag_id = 'aws_iam_cis' AND CAST(logical_date AS DATE) IN :days")
    engine = create_engine(metadata_url(env))
    with engine.connect() as conn:
        rows = conn.execute(query.bindparams(bindparam("days", expanding=True)), {"days": list(days)}).fetchall()
    engine.dispose()
    return {r.logical_date.date().isoformat(): r for r in rows}


def _open_backfills(env):
    """Airflow's backfill records of the DAG that are not complete (these refuse any new backfill)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(metadata_url(env))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id FROM backfill WHERE dag_id = 'aws_iam_cis' "
                                 "AND completed_at IS NULL")).fetchall()
    engine.dispose()
    return [r.id for r in rows]


def test_backfill_is_an_airflow_backfill_that_replays_and_reports(first_run, e2e_stack, today, monkeypatch,
                                                                  capsys):
    _, live_verdicts, _ = first_run
    past = date.fromisoformat(today) - timedelta(days=20)
    empty = past - timedelta(days=1)
    env = e2e_stack.env

    # An earlier run of `past`, before its snapshot existed: it failed, and a backfill with
    # REPROCESS=failed must rerun that same run, not delete it.
    earlier = run_dag(env, logical_date=past.isoformat(), conf=json.dumps({"mode": "replay"}),
                      log_file=e2e_stack.state_dir / f"earlier-{past}.log", progress=None)
    assert earlier.state == "failed"
    earlier_id = _runs(env, past)[past.isoformat()].id

    s3 = e2e_stack.boto3_client("s3")
    source = f"iam/snapshot_date={today}/"
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=e2e_stack.bucket, Prefix=source)
            for o in page.get("Contents", [])]
    without_snapshot = account_of(e2e_stack.emulator.manifest, "none")
    for key in keys:
        if f"account_id={without_snapshot}/" in key:
            continue  # this account has no stored snapshot for the past date
        target = key.replace(source, f"iam/snapshot_date={past}/")
        if key.endswith("/_manifest.json"):
            # the past date's own manifest: its date and keys (the loader refuses a stray manifest)
            manifest = json.loads(s3.get_object(Bucket=e2e_stack.bucket, Key=key)["Body"].read())
            manifest["snapshot_date"] = past.isoformat()
            for entry in manifest["datasets"].values():
                if "key" in entry:
                    entry["key"] = entry["key"].replace(source, f"iam/snapshot_date={past}/")
            s3.put_object(Bucket=e2e_stack.bucket, Key=target, Body=json.dumps(manifest).encode(),
                          ServerSideEncryption="AES256")
            continue
        s3.copy_object(Bucket=e2e_stack.bucket, Key=target,
                       CopySource={"Bucket": e2e_stack.bucket, "Key": key}, ServerSideEncryption="AES256")

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    emulator = e2e_stack.emulator
    emulator.reset_calls()
    capsys.readouterr()
    assert cli.backfill([empty.isoformat(), past.isoformat(), "--reprocess", "failed"]) == 1
    out = capsys.readouterr().out
    # STS GetCallerIdentity (no permission, no credentials issued) only names the bucket's expected owner
    services = {c["service"] for c in emulator.calls() if (c["service"], c["action"]) != ("sts", "GetCallerIdentity")}
    assert services <= {"s3"}, f"a backfill must make no IAM, STS or Organizations call: {services}"

    # Per date: what was replayed, skipped and why, written; the empty date's reason from its task log.
    replayed = fetch_results(e2e_stack, past.isoformat())
    expected = {(f, c, a, r): v for (f, c, a, r), v in live_verdicts.items() if a != without_snapshot}
    accounts = len({k[2] for k in expected})
    assert f"{past}: success: {accounts} account(s) replayed, {len(expected)} verdicts written" in out
    assert f"1 skipped (no stored snapshot): {without_snapshot}" in out
    assert f"{empty}: failed: 0 account(s) replayed, 0 verdicts written" in out
    assert f"discover_accounts failed: AirflowFailException: replay of {empty}: nothing to replay" in out
    assert f"1 date(s) not re-evaluated: {empty}" in out
    assert {k: s for k, (s, _) in replayed.items()} == {k: s for k, (s, _) in expected.items()}

    runs = _runs(env, past, empty)
    assert runs[past.isoformat()].id == earlier_id, "the failed run was rerun in place, not replaced"
    for day, state in ((past, "success"), (empty, "failed")):
        row = runs[day.isoformat()]
        assert (row.run_type, row.state) == ("backfill", state)
        assert row.backfill_id is not None
        assert row.start_date.date() == date.fromisoformat(today), "a real start date, not the logical date"

    # The failed backfill left Airflow's record complete: the next ones start, after a failure and after
    # a success, each leaving its own record complete too.
    assert _open_backfills(env) == []
    for attempt in (1, 2):
        capsys.readouterr()
        assert cli.backfill([past.isoformat(), past.isoformat(), "--reprocess", "completed"]) == 0, attempt
        out = capsys.readouterr().out
        assert f"{past}: success: {accounts} account(s) replayed, {len(expected)} verdicts written" in out
        assert _open_backfills(env) == [], attempt
    assert _runs(env, past)[past.isoformat()].id == earlier_id, "rerun in place by every backfill"
