"""Fixtures of the S3 and load fault tests: a fresh bucket in the emulator per test."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest

KEY_ID, SECRET = "AKIASTORAGETEST00001", "storage-test-secret-value"


@pytest.fixture()
def bucket(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET,
        "extra": {"endpoint_url": emulator.url, "region_name": "us-east-1"}}))
    name = f"faults-{datetime.now(UTC).strftime('%H%M%S%f')}"
    s3(emulator).create_bucket(Bucket=name)
    return name


def s3(emulator):
    return boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
