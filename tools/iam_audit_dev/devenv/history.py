"""`make demo`'s short history: earlier daily snapshots, so that "newly failing", "resolved" and the trend
have something to show after a single live run.

The earlier snapshots are today's raw snapshot (read back from S3) as it would have looked `k` days earlier:
every timestamp moved back `k` days (the same ages, so the same verdicts), plus a few scripted changes:

- ROTATED_DAYS_AGO: in every account, the newest active access key replaced, that day, a key 200 days
  older (before it the old key fails the rotation controls);
- since yesterday, in every account, the first console user without MFA today lost it (newly failing
  today), and every account whose password policy asks for 14 characters or more asked for 8 until
  yesterday (resolved today): the dashboards' "since the previous snapshot" tiles have rows;
- an exception, added after the replays, mutes one open finding until EXCEPTION_EXPIRES_IN_DAYS from
  today (Superset's "muted findings whose exception expires within 30 days").

They are written to S3 like the pipeline's own (manifest with SHA-256 per object, organisation list), then
evaluated by the pipeline's replay: the DAG's task bodies (plan_run with mode=replay, discover, load) and
every check's SQL as its task runs it (iam_audit.database.run_check), one date after the other, oldest
first. Nothing about them is written to the verdict tables directly.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

from iam_audit.ingest import layout

HISTORY_DAYS = 13  # earlier days; with today's live run, two weeks
ROTATED_DAYS_AGO = 5
STRONG_PASSWORD_LENGTH = 14
EXCEPTION_EXPIRES_IN_DAYS = 7
DEMO_RUN_PREFIX = "demo_history__"
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?(\+00:00|Z)")


def _shift(text: str, days: int) -> str:
    """Every ISO-8601 UTC timestamp in `text` moved `days` days back (dates without a time, such as a
    policy document's Version, are left alone)."""
    def back(m: re.Match) -> str:
        moment = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}+00:00") - timedelta(days=days)
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + (m.group(3) or "") + m.group(4)
    return _TIMESTAMP.sub(back, text)


def _rotated_key(keys: list[dict]) -> dict | None:
    active = [k for k in keys if k.get("Status") == "Active"]
    return max(active, key=lambda k: k["CreateDate"]) if active else None


def as_of(datasets: dict[str, object], days_ago: int) -> dict[str, object]:
    """One account's data sets of today as they were `days_ago` days earlier (see the module's doc)."""
    out = json.loads(json.dumps(datasets))
    key = _rotated_key((out.get("access_keys") or {}).get("AccessKeyMetadata", []))
    if key and days_ago > ROTATED_DAYS_AGO:
        new_id, new_created = key["AccessKeyId"], key["CreateDate"]
        old_created = (datetime.fromisoformat(new_created) - timedelta(days=200)).isoformat()
        key.update(AccessKeyId=new_id[:-4] + "OLD1", CreateDate=old_created)
        report = out.get("credential_report") or {}
        if report.get("Content"):
            report["Content"] = _credential_rows(report["Content"], key["UserName"],
                                                 lambda row: _old_key_in_report(row, new_created, old_created))
    policy = (out.get("password_policy") or {}).get("PasswordPolicy")
    if policy and (policy.get("MinimumPasswordLength") or 0) >= STRONG_PASSWORD_LENGTH:
        policy["MinimumPasswordLength"] = 8
    report = out.get("credential_report") or {}
    if report.get("Content"):
        user = next((r["user"] for r in csv.DictReader(io.StringIO(report["Content"]))
                     if r["user"] != "<root_account>" and r["password_enabled"] == "true"
                     and r["mfa_active"] == "false"), None)
        if user:
            report["Content"] = _credential_rows(report["Content"], user, lambda row: {**row, "mfa_active": "true"})
    return {name: json.loads(_shift(json.dumps(payload), days_ago)) for name, payload in out.items()}


def _old_key_in_report(row: dict, new_created: str, old_created: str) -> dict:
    row = dict(row)
    for n in ("1", "2"):
        rotated = row.get(f"access_key_{n}_last_rotated", "")
        if rotated.startswith(new_created[:19]):
            row[f"access_key_{n}_last_rotated"] = old_created
    return row


def _credential_rows(content: str, user: str, change) -> str:
    rows = list(csv.DictReader(io.StringIO(content)))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(change(row) if row["user"] == user else row)
    return out.getvalue()


def write_history(s3, bucket: str, today: date, days: int = HISTORY_DAYS, prefix: str = "iam",
                  keep: set[date] = frozenset()) -> list[date]:
    """The earlier days' raw snapshots, derived from today's stored one; returns the days written, oldest
    first. Days in `keep` (e.g. with verdicts already) and days with a snapshot of a real run are left alone."""
    source = f"{prefix}/snapshot_date={today}/"
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=source)
            for o in page.get("Contents", [])]
    manifests = {k: json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
                 for k in keys if k.endswith("/" + layout.MANIFEST) and "/account_id=" in k}
    # the organisation-level objects (account list, tags, OU tree, SCPs, ... and their manifest): the same
    # on every earlier day, under that day's keys
    org_objects = {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read()
                   for k in keys if "/organization/" in k}
    today_data = {}
    for manifest in manifests.values():
        today_data[manifest["account_id"]] = {
            name: layout.decode(s3.get_object(Bucket=bucket, Key=entry["key"])["Body"].read(), entry["key"])
            for name, entry in manifest["datasets"].items() if entry.get("key")}
    written = []
    for days_ago in range(days, 0, -1):
        day = today - timedelta(days=days_ago)
        target = f"{prefix}/snapshot_date={day}/"
        if day in keep or _real_snapshot(s3, bucket, target):
            continue
        for key, blob in org_objects.items():
            if key.endswith("/" + layout.MANIFEST):
                org_manifest = json.loads(blob)
                for entry in org_manifest.get("datasets", {}).values():
                    if entry.get("key"):
                        entry["key"] = entry["key"].replace(source, target)
                blob = json.dumps({**org_manifest, "snapshot_date": day.isoformat(),
                                   "run_id": f"{DEMO_RUN_PREFIX}{day}"}).encode()
            s3.put_object(Bucket=bucket, Key=key.replace(source, target), Body=blob, ServerSideEncryption="AES256")
        for manifest in manifests.values():
            account_id = manifest["account_id"]
            data = as_of(today_data[account_id], days_ago)
            entries = {}
            for name, entry in manifest["datasets"].items():
                entry = dict(entry)
                if entry.get("key"):
                    blob = layout.encode(data[name])
                    entry["key"] = entry["key"].replace(source, target)
                    entry["sha256"] = hashlib.sha256(blob).hexdigest()
                    s3.put_object(Bucket=bucket, Key=entry["key"], Body=blob, ServerSideEncryption="AES256")
                entries[name] = entry
            extracted = datetime.fromisoformat(manifest["extracted_at"]) - timedelta(days=days_ago)
            covered = dict(manifest)
            if isinstance(manifest.get("organization"), dict):   # the organisation list it vouches for
                covered["organization"] = {**manifest["organization"],
                                           "key": manifest["organization"]["key"].replace(source, target)}
            s3.put_object(Bucket=bucket, Key=layout.manifest_key(prefix, day, account_id),
                          Body=json.dumps({**covered, "snapshot_date": day.isoformat(), "datasets": entries,
                                           "extracted_at": extracted.isoformat(),
                                           "run_id": f"{DEMO_RUN_PREFIX}{day}"}).encode(),
                          ServerSideEncryption="AES256")
        written.append(day)
    return written


def _real_snapshot(s3, bucket: str, target: str) -> bool:
    """Whether a run other than this demo's history stored a snapshot of that day (never overwritten)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=target):
        for o in page.get("Contents", []):
            if o["Key"].endswith("/" + layout.MANIFEST):
                manifest = json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
                if not str(manifest.get("run_id", "")).startswith(DEMO_RUN_PREFIX):
                    return True
    return False


def replay(day: date, connect, aws_conn_id: str = "aws_default", postgres_conn_id: str = "postgres_default") -> dict:
    """One date through the DAG's replay: its task bodies and every check's SQL, as the DAG runs them."""
    from iam_audit import tasks
    from iam_audit.database import run_check
    from iam_audit.evaluate.catalogue import load_catalogue
    from iam_audit.plan import RunPlan

    run_id = f"{DEMO_RUN_PREFIX}{day}"
    plan = RunPlan.from_xcom(tasks.plan_run({"params": {"mode": "replay"}, "run_id": run_id,
                                             "logical_date": datetime(day.year, day.month, day.day, tzinfo=UTC)}))
    accounts = tasks.discover(plan, aws_conn_id)
    loaded = tasks.load(plan, accounts, aws_conn_id, postgres_conn_id)
    def check(logic: str) -> None:  # each check on its own connection, in parallel, as the DAG's check tasks
        conn = connect()
        try:
            run_check(conn, logic, day, run_id, plan.frameworks)
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(check, [c.logic for c in load_catalogue().checks]))
    return loaded


def mute_one_finding(conn, today: date) -> dict | None:
    """An exception for one of today's open findings, expiring EXCEPTION_EXPIRES_IN_DAYS from today (none
    when an earlier demo's is still in force)."""
    if conn.execute("SELECT 1 FROM aws_policy_exceptions WHERE created_by = 'make demo' AND expires_on >= %s",
                    (today,)).fetchone():
        return None
    # a control of iam_hygiene only: the exception then mutes the whole finding, not one framework's row of it
    row = conn.execute(
        "SELECT account_id, framework, check_id, resource_id FROM aws_policy_open_findings "
        "WHERE snapshot_date = %s AND framework = 'iam_hygiene' "
        "ORDER BY CASE severity WHEN 'medium' THEN 0 ELSE 1 END, account_id, check_id, resource_id "
        "LIMIT 1", (today,)).fetchone()
    if row is None:
        return None
    account_id, framework, check_id, resource_id = row
    expires = today + timedelta(days=EXCEPTION_EXPIRES_IN_DAYS)
    conn.execute("INSERT INTO aws_policy_exceptions (account_id, framework, check_id, resource_pattern, reason, "
                 "expires_on, created_by) VALUES (%s, %s, %s, %s, %s, %s, 'make demo')",
                 (account_id, framework, check_id, resource_id,
                  "demo: accepted until the owner's change is deployed", expires))
    conn.commit()
    return {"account_id": account_id, "framework": framework, "check_id": check_id, "resource_id": resource_id,
            "expires_on": expires}
