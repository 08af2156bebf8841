"""The size cap on raw objects leaves room for real accounts' largest data set and stops a gzip bomb."""

from __future__ import annotations

import pytest

from iam_audit.ingest import layout


def large_authorization_details() -> dict:
    """GetAccountAuthorizationDetails of an account using large AWS-managed policies with every version
    listed (ReadOnlyAccess is past version 180, with a document of tens of KiB)."""
    statement = {"Effect": "Allow", "Action": [f"service{i}:Describe*" for i in range(1500)], "Resource": "*"}
    versions = [{"VersionId": f"v{v}", "IsDefaultVersion": v == 182, "CreateDate": "2026-01-01T00:00:00Z",
                 "Document": {"Version": "2012-10-17", "Statement": [statement]}} for v in range(1, 183)]
    policies = [{"PolicyName": name, "Arn": f"arn:aws:iam::aws:policy/{name}", "DefaultVersionId": "v182",
                 "PolicyVersionList": versions} for name in ("ReadOnlyAccess", "SecurityAudit", "ViewOnlyAccess")]
    return {"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": [], "Policies": policies}


def test_large_aws_managed_policies_fit_the_default_cap(monkeypatch):
    monkeypatch.delenv("IAM_AUDIT_MAX_OBJECT_MIB", raising=False)
    payload = large_authorization_details()
    blob = layout.encode(payload)
    decoded = layout.decode(blob, "s3://bucket/gaad.json.gz")
    assert len(decoded["Policies"]) == 3
    # and a cap below its decompressed size refuses it, naming the object
    monkeypatch.setenv("IAM_AUDIT_MAX_OBJECT_MIB", "1")
    with pytest.raises(layout.ObjectTooLarge, match="s3://bucket/gaad.json.gz decompresses to more than 1 MiB"):
        layout.decode(blob, "s3://bucket/gaad.json.gz")


def test_truncated_and_trailing_data_are_corrupt():
    blob = layout.encode({"a": 1})
    with pytest.raises(layout.CorruptObjectError, match="corrupt or truncated"):
        layout.decode(blob[:-4], "s3://b/k")
    with pytest.raises(layout.CorruptObjectError, match="trailing data"):
        layout.decode(blob + b"garbage", "s3://b/k")
