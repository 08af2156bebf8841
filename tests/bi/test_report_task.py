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


def test_the_compliance_page_serves_the_stored_report_of_a_date(emulator, monkeypatch):
    """The report a run stored is reachable from the page (/compliance/report/<date>): the same bytes,
    404 naming the date when none is stored, 400 for something that is not a date."""
    import boto3
    from fastapi.testclient import TestClient

    from iam_audit.web import app as web_app

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "AKIAREPORTTEST000001", "password": "report-test-secret-value",
        "extra": {"endpoint_url": emulator.url, "region_name": "us-east-1"}}))
    monkeypatch.setenv("AIRFLOW_VAR_IAM_AUDIT_BUCKET", "report-route-test")
    monkeypatch.setenv("AIRFLOW_VAR_IAM_AUDIT_PREFIX", "audit")
    s3 = boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1",
                      aws_access_key_id="AKIAREPORTTEST000001", aws_secret_access_key="x" * 20)
    s3.create_bucket(Bucket="report-route-test")
    page = "<!DOCTYPE html><title>IAM compliance report 2026-11-05</title><p>é &lt;b&gt;</p>"
    upload_html(S3RawStore("report-route-test"), report_key("audit", "2026-11-05"), page)
    monkeypatch.setattr(web_app, "_authorize", lambda: (lambda: None))  # authorization: tests/ui
    client = TestClient(web_app.create_app())
    stored = client.get("/report/2026-11-05")
    assert stored.status_code == 200 and stored.headers["content-type"].startswith("text/html")
    assert stored.content.decode("utf-8") == page
    missing = client.get("/report/2026-11-06")
    assert missing.status_code == 404 and "no report of 2026-11-06 is stored" in missing.text
    assert client.get("/report/2026-13-01").status_code == 400
    assert client.get("/report/..%2F..%2Fsecret").status_code in (400, 404)
    # an API server without the AWS connection (a deployment giving it only compliance_reader) says where
    # the report is and which connection would read it, instead of failing
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT")
    unread = client.get("/report/2026-11-05")
    assert unread.status_code == 404 and "no connection aws_default" in unread.text
    assert "s3://report-route-test/audit/snapshot_date=2026-11-05/report.html" in unread.text
