"""Alerts to Amazon SNS through the amazon provider's SnsNotifier, against the emulator's SNS."""

from __future__ import annotations

import json

import boto3
import pytest

from iam_audit.alerting import alerts
from tests.integration.conftest import KEY_ID, SECRET


def client(emulator, service: str):
    return boto3.client(service, endpoint_url=emulator.url, region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)


def test_alert_and_digest_are_published_to_the_topic(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_IAM_AUDIT_ALERTS_SNS", json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET,
        "extra": {"endpoint_url": emulator.url, "region_name": "us-east-1"}}))
    sns, sqs = client(emulator, "sns"), client(emulator, "sqs")
    topic = sns.create_topic(Name="iam-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="iam-alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    assert alerts.parse_recipient(f"sns:{topic}") == ("sns", topic)
    item = {"rule": "newly_failing", "title": "MFA for console users – é", "account_id": "111111111111",
            "severity": "high", "resource_id": "arn:aws:iam::111111111111:user/bob", "reason": "no MFA",
            "links": {"compliance": "http://a/compliance/?account=111111111111", "run": "http://a/run"}}
    alerts.send_with_retries(alerts.Message("sns", topic, "immediate", [item], "2026-11-05", {}), attempts=1)
    alerts.send_with_retries(alerts.Message("sns", topic, "digest", [item, item], "2026-11-05", {}), attempts=1)
    received = [json.loads(m["Body"]) for m in
                sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])]
    assert len(received) == 2
    first = next(r for r in received if "digest" not in r["Subject"])
    assert first["Subject"] == "[aws_iam_cis] HIGH: MFA for console users ? ? in 111111111111"
    assert "arn:aws:iam::111111111111:user/bob" in first["Message"] and "no MFA" in first["Message"]
    digest = next(r for r in received if "digest" in r["Subject"])
    assert "2 alert(s)" in digest["Message"]


def test_a_topic_that_does_not_exist_is_an_error_naming_the_connection(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_IAM_AUDIT_ALERTS_SNS", json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET,
        "extra": {"endpoint_url": emulator.url, "region_name": "us-east-1"}}))
    missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
    with pytest.raises(Exception) as failed:
        alerts.send_with_retries(alerts.Message("sns", missing, "immediate", [{"rule": "r"}], "d", {}), attempts=1)
    why = alerts.describe_failure("sns", missing, failed.value)
    assert why.startswith(f"sns via connection iam_audit_alerts_sns, to {missing}: ") and SECRET not in why
    with pytest.raises(ValueError, match="topic ARN"):
        alerts.parse_recipient("sns:my-topic")
