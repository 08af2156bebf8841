"""Alerts end to end on the emulated organisation: day 1 sends only the baselines; after IAM changes,
day 2 sends exactly the expected alerts routed by the account tag; a channel down fails the task and
the rerun delivers exactly what was unsent; a backfill of day 1 sends nothing.

Its own compliance database and bucket (the shared stack's first run is untouched); the IAM changes
are its own users, removed at the end."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import boto3
import pytest
from iam_audit_dev.devenv.stack import EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY

from iam_audit.aws import AwsTarget
from tests.alerts.receivers import HttpReceiver, SmtpReceiver
from tests.conftest import account_of

pytestmark = pytest.mark.e2e

ADMIN, TWO_KEYS = "alerts-e2e-admin", "alerts-e2e-two-keys"


def iam(emulator, account_id: str):
    target = AwsTarget(session=boto3.Session(aws_access_key_id=EMULATOR_ACCESS_KEY,
                                             aws_secret_access_key=EMULATOR_SECRET_KEY, region_name="us-east-1"),
                       endpoint_url=emulator.url, session_policy=None)   # an administrator, not the audit
    return target.client("iam", session=target.assume_role(
        f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole"))


def remove_user(client, name: str) -> None:
    try:
        for key in client.list_access_keys(UserName=name)["AccessKeyMetadata"]:
            client.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
        for policy in client.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
            client.detach_user_policy(UserName=name, PolicyArn=policy["PolicyArn"])
        try:
            client.delete_login_profile(UserName=name)
        except client.exceptions.NoSuchEntityException:
            pass
        client.delete_user(UserName=name)
    except client.exceptions.NoSuchEntityException:
        pass


def test_alerts_baseline_changes_outage_rerun_and_backfill(e2e_stack, run, today):
    emulator = e2e_stack.emulator
    manifest = emulator.manifest
    tagged, untagged = account_of(manifest, "weak"), account_of(manifest, "strong")
    day1 = (date.fromisoformat(today) - timedelta(days=1)).isoformat()
    database, bucket = f"alerts_{uuid.uuid4().hex[:8]}", f"alerts-{uuid.uuid4().hex[:8]}"
    e2e_stack.postgres.create_database(database)
    e2e_stack.boto3_client("s3").create_bucket(Bucket=bucket)
    organizations = e2e_stack.boto3_client("organizations")
    organizations.tag_resource(ResourceId=tagged, Tags=[{"Key": "security-contact", "Value": "owner@example.com"}])
    http, smtp = HttpReceiver(), SmtpReceiver()
    weak_iam, strong_iam = iam(emulator, tagged), iam(emulator, untagged)
    env = {
        "AIRFLOW_CONN_POSTGRES_DEFAULT": e2e_stack.postgres.airflow_conn_json(database),
        "AIRFLOW_VAR_IAM_AUDIT_BUCKET": bucket,
        "AIRFLOW_CONN_IAM_AUDIT_ALERTS_WEBHOOK": json.dumps({"conn_type": "http", "host": http.url("/hook")}),
        "AIRFLOW_CONN_IAM_AUDIT_ALERTS_SMTP": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port,
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "iam-audit@example.com"}}),
        "IAM_AUDIT_ALERT_ATTEMPTS": "2", "IAM_AUDIT_ALERT_RETRY_WAIT_SECONDS": "0.1",
    }
    accounts = {"accounts": [tagged, untagged]}

    def ledger() -> list[tuple]:
        with e2e_stack.postgres.connect(database) as conn:
            return conn.execute("SELECT rule, alert_key, channel, recipient, outcome, run_id, sent_run_id "
                                "FROM aws_policy_alert_ledger ORDER BY id").fetchall()

    try:
        weak_iam.create_user(UserName=TWO_KEYS)
        keys = [weak_iam.create_access_key(UserName=TWO_KEYS)["AccessKey"]["AccessKeyId"] for _ in range(2)]

        # day 1 (a live run of yesterday): one baseline digest per account and recipient, nothing else
        first = run(day1, conf={**accounts, "mode": "live", "overwrite_past_snapshot": True}, **env)
        assert first.state == "success", (first.failed_tasks, first.log_file)
        assert sorted((r[0], r[2], r[3]) for r in ledger()) == [
            ("baseline", "email", "owner@example.com"), ("baseline", "webhook", "iam_audit_alerts_webhook")]
        assert [b["type"] for b in http.bodies()] == ["digest"]
        assert http.bodies()[0]["items"][0]["account_id"] == untagged
        assert [to for to, _ in smtp.messages] == [["owner@example.com"]]
        assert "baseline" in smtp.messages[0][1].get_body(("html",)).get_content().lower()

        # IAM changes: a console user with admin rights and no MFA (untagged account), a key deleted (tagged)
        strong_iam.create_user(UserName=ADMIN)
        strong_iam.create_login_profile(UserName=ADMIN, Password="A-long-password-2026!")
        strong_iam.attach_user_policy(UserName=ADMIN, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
        weak_iam.delete_access_key(UserName=TWO_KEYS, AccessKeyId=keys[0])

        # day 2 with the webhook down: the task fails after its retries; e-mail still goes out
        http.requests.clear()
        smtp.messages.clear()
        http.status = 503
        down = run(today, conf=accounts, **env)
        assert down.state == "failed" and "send_alerts" in down.failed_tasks, (down.failed_tasks, down.log_file)
        log = down.log_file.read_text()
        assert "connection iam_audit_alerts_webhook" in log and "HTTP 503" in log
        with e2e_stack.postgres.connect(database) as conn:
            expected = {r[0] for r in conn.execute(
                "SELECT DISTINCT c.account_id || ' ' || c.resource_id FROM aws_policy_changes c "
                "WHERE c.snapshot_date = %s AND c.severity IN ('high', 'critical') AND c.current_status = 'fail' "
                "AND c.change_type IN ('newly_failing', 'new_resource')", (today,)).fetchall()}
        admin_arn = f"arn:aws:iam::{untagged}:user/{ADMIN}"
        assert f"{untagged} {admin_arn}" in expected
        unsent = [r for r in ledger() if r[4] != "sent"]
        assert unsent and all(r[2] == "webhook" and r[4] == "failed" for r in unsent)
        assert {r[0] for r in unsent} == {"newly_failing"}
        # one alert per (control logic, account, resource): the admin's findings, not one per framework
        logics = {r[1].split(" ")[0] for r in unsent if admin_arn in r[1]}
        assert {"console_users_mfa", "hygiene_console_admin_without_mfa"} <= logics
        assert len(http.requests) == 2 * len(unsent)     # each tried twice, none accepted
        # routed by the tag: the tagged account's changes went by e-mail (the key deleted is in the digest)
        mailed = [r for r in ledger() if r[5] == down.run_id and r[2] == "email"]
        assert mailed and all(r[3] == "owner@example.com" and r[4] == "sent" for r in mailed)
        assert any(r[0] == "resolved" and TWO_KEYS in r[1] for r in mailed)
        assert {tuple(r[1].split(" ")[1:3]) for r in ledger() if r[0] == "newly_failing"} == \
            {tuple(e.split(" ")) for e in expected}
        mails = len(smtp.messages)

        # the rerun of day 2 with the webhook back: exactly the unsent ones, nothing twice
        http.requests.clear()
        http.status = 200
        again = run(today, conf=accounts, **env)
        assert again.state == "success", (again.failed_tasks, again.log_file)
        delivered = sorted(b["dedup_key"] for b in http.bodies())
        assert delivered == sorted(f"{r[0]}|{r[1]}|{r[2]}|{r[3]}" for r in unsent)
        assert len(smtp.messages) == mails
        assert all(r[4] == "sent" for r in ledger())
        assert f"Alerts: {len(unsent)} sent (newly_failing/webhook {len(unsent)})" in again.log_file.read_text()
        assert {r[6] for r in ledger() if (r[0], r[1]) in {(u[0], u[1]) for u in unsent}} == {again.run_id}

        # a backfill (replay) of day 1: no alert at all
        rows = len(ledger())
        http.requests.clear()
        replay = run(day1, conf=accounts, **env)
        assert replay.state == "success", (replay.failed_tasks, replay.log_file)
        assert http.requests == [] and len(smtp.messages) == mails and len(ledger()) == rows
        assert "Alerts: none (a replay sends no alert)" in replay.log_file.read_text()
    finally:
        http.stop()
        smtp.stop()
        organizations.untag_resource(ResourceId=tagged, TagKeys=["security-contact"])
        remove_user(weak_iam, TWO_KEYS)
        remove_user(strong_iam, ADMIN)
