"""publish_report's upload through S3Hook to the emulator over HTTP: key layout, content type, encryption."""

import json

from iam_audit.ingest.raw_store import S3RawStore
from iam_audit.reporting.publish import report_key, upload_html


def test_report_key():
    assert report_key("iam", "2026-11-05") == "iam/snapshot_date=2026-11-05/report.html"


def test_upload_is_html_and_encrypted(emulator, monkeypatch):
    import boto3

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "AKIAREPORTTEST000001", "password": "report-test-secret-value",
        "extra": {"endpoint_url": emulator.url, "region_name": "us-east-1"}}))
    s3 = boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1",
                      aws_access_key_id="AKIAREPORTTEST000001", aws_secret_access_key="x" * 20)
    s3.create_bucket(Bucket="report-upload-test")
    store = S3RawStore("report-upload-test")
    key = "iam/snapshot_date=2026-11-05/report.html"
    upload_html(store, key, "<!DOCTYPE html><p>é</p>")
    head = s3.head_object(Bucket="report-upload-test", Key=key)
    assert head["ContentType"].startswith("text/html")
    assert head["ServerSideEncryption"] == "AES256"
    body = s3.get_object(Bucket="report-upload-test", Key=key)["Body"].read().decode("utf-8")
    assert body == "<!DOCTYPE html><p>é</p>"
