"""Backfills re-evaluate stored snapshots: no IAM call, accounts without a snapshot skipped, idempotent."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from iam_audit.devenv import cli

from tests.conftest import account_of
from tests.e2e.conftest import fetch_results

pytestmark = pytest.mark.e2e


def test_backfill_replays_stored_snapshots_without_iam_calls(first_run, e2e_stack, today, monkeypatch, capsys):
    _, live_verdicts, _ = first_run
    past = (date.fromisoformat(today) - timedelta(days=20)).isoformat()
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
            manifest["snapshot_date"] = past
            for entry in manifest["datasets"].values():
                if "key" in entry:
                    entry["key"] = entry["key"].replace(source, f"iam/snapshot_date={past}/")
            s3.put_object(Bucket=e2e_stack.bucket, Key=target, Body=json.dumps(manifest).encode(),
                          ServerSideEncryption="AES256")
            continue
        s3.copy_object(Bucket=e2e_stack.bucket, Key=target,
                       CopySource={"Bucket": e2e_stack.bucket, "Key": key}, ServerSideEncryption="AES256")

    for name, value in e2e_stack.env.items():
        monkeypatch.setenv(name, value)
    emulator = e2e_stack.emulator
    emulator.reset_calls()
    assert cli.backfill([past, past]) == 0
    assert f"{past}: success" in capsys.readouterr().out
    services = {c["service"] for c in emulator.calls()}
    assert services <= {"s3"}, f"a backfill must make no IAM, STS or Organizations call: {services}"

    replayed = fetch_results(e2e_stack, past)
    assert replayed and not any(k[2] == without_snapshot for k in replayed)
    expected = {(f, c, a, r): v for (f, c, a, r), v in live_verdicts.items() if a != without_snapshot}
    assert {k: s for k, (s, _) in replayed.items()} == {k: s for k, (s, _) in expected.items()}
    log = (e2e_stack.state_dir / f"airflow-{e2e_stack.database}" / f"backfill-{past}.log").read_text()
    assert f"account {without_snapshot}: no stored snapshot for {past}" in log

    assert cli.backfill([past, past]) == 0  # idempotent
    assert fetch_results(e2e_stack, past) == replayed
