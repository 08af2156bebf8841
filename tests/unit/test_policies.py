"""The policy evaluator decides requests the way AWS does: Resource, Condition, explicit Deny."""

from __future__ import annotations

import pytest

from iam_audit.evaluate.policies import UnsupportedPolicy, evaluate, load_policy
from tests.old_policies import old_reader

BUCKET, PREFIX = "audit-raw", "iam"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
OWNER = "111122223333"
OWN = {"s3:ResourceAccount": OWNER}

def reader():
    return [load_policy("s3-raw-reader.json", Bucket=BUCKET, Prefix=PREFIX, BucketOwnerAccountId=OWNER)]


def writer():
    return [load_policy("s3-raw-writer.json", Bucket=BUCKET, Prefix=PREFIX, BucketOwnerAccountId=OWNER)]


def test_head_bucket_is_refused_by_the_old_reader_policy():
    """HeadBucket is authorised as s3:ListBucket with no s3:prefix key: a condition on a missing key is false."""
    old = [old_reader(BUCKET, PREFIX)]
    assert not evaluate(old, "s3:ListBucket", BUCKET_ARN, {}).allowed
    # what the old policy did allow: listing the whole bucket
    assert evaluate(old, "s3:ListBucket", BUCKET_ARN, {"s3:prefix": ""}).allowed


def test_reader_lists_under_the_prefix_only():
    assert evaluate(reader(), "s3:ListBucket", BUCKET_ARN, {"s3:prefix": "iam/", **OWN}).allowed
    assert evaluate(reader(), "s3:ListBucket", BUCKET_ARN,
                    {"s3:prefix": "iam/snapshot_date=2026-01-01/", **OWN}).allowed
    for prefix in ("", "other/", "ia"):
        assert not evaluate(reader(), "s3:ListBucket", BUCKET_ARN, {"s3:prefix": prefix, **OWN}).allowed, prefix
    assert not evaluate(reader(), "s3:ListBucket", BUCKET_ARN, OWN).allowed  # HeadBucket
    assert not evaluate(reader(), "s3:ListBucket", "arn:aws:s3:::another-bucket", {"s3:prefix": "iam/", **OWN}).allowed
    assert evaluate(reader(), "s3:GetObject", f"{BUCKET_ARN}/iam/x.json.gz", OWN).allowed
    assert not evaluate(reader(), "s3:GetObject", f"{BUCKET_ARN}/secrets/x", OWN).allowed


def test_reader_and_writer_refuse_a_bucket_of_the_same_name_in_another_account():
    """Bucket names are global: if the bucket is deleted and its name taken, s3:ResourceAccount differs."""
    foreign = {"s3:ResourceAccount": "999988887777"}
    assert not evaluate(reader(), "s3:GetObject", f"{BUCKET_ARN}/iam/x.json.gz", foreign).allowed
    assert not evaluate(reader(), "s3:ListBucket", BUCKET_ARN, {"s3:prefix": "iam/", **foreign}).allowed
    sealed = {"s3:x-amz-server-side-encryption": "AES256"}
    assert not evaluate(writer(), "s3:PutObject", f"{BUCKET_ARN}/iam/a", {**sealed, **foreign}).allowed
    assert evaluate(writer(), "s3:PutObject", f"{BUCKET_ARN}/iam/a", {**sealed, **OWN}).allowed


def test_condition_operators_on_missing_keys():
    def policy(condition):
        return [{"Statement": [{"Effect": "Allow", "Action": "x:Y", "Resource": "*", "Condition": condition}]}]

    assert not evaluate(policy({"StringEquals": {"k": "v"}}), "x:Y").allowed
    assert evaluate(policy({"StringEquals": {"k": "v"}}), "x:Y", context={"K": "v"}).allowed  # key names ignore case
    assert not evaluate(policy({"StringEquals": {"k": "v"}}), "x:Y", context={"k": "V"}).allowed  # values do not
    assert evaluate(policy({"StringNotEquals": {"k": "v"}}), "x:Y").allowed
    assert evaluate(policy({"StringEqualsIfExists": {"k": "v"}}), "x:Y").allowed
    assert not evaluate(policy({"StringEqualsIfExists": {"k": "v"}}), "x:Y", context={"k": "w"}).allowed
    assert evaluate(policy({"Null": {"k": "true"}}), "x:Y").allowed
    assert not evaluate(policy({"Null": {"k": "false"}}), "x:Y").allowed
    tls = {"aws:SecureTransport": True}
    assert evaluate(policy({"Bool": {"aws:SecureTransport": "true"}}), "x:Y", context=tls).allowed
    assert evaluate(policy({"ForAnyValue:StringLike": {"k": "a*"}}), "x:Y", context={"k": ["b", "ab"]}).allowed
    assert not evaluate(policy({"ForAllValues:StringLike": {"k": "a*"}}), "x:Y", context={"k": ["b", "ab"]}).allowed
    # several keys of a block and several blocks are ANDed
    both = policy({"StringEquals": {"a": "1", "b": "2"}})
    assert not evaluate(both, "x:Y", context={"a": "1"}).allowed
    assert evaluate(both, "x:Y", context={"a": "1", "b": "2"}).allowed


def test_actions_ignore_case_resources_do_not():
    p = [{"Statement": [{"Effect": "Allow", "Action": "iam:Get*", "Resource": "arn:aws:iam::*:role/Audit"}]}]
    assert evaluate(p, "IAM:GetRole", "arn:aws:iam::111122223333:role/Audit").allowed
    assert not evaluate(p, "iam:GetRole", "arn:aws:iam::111122223333:role/audit").allowed
    assert not evaluate(p, "iam:ListRoles", "arn:aws:iam::111122223333:role/Audit").allowed


def test_numeric_operators_compare_the_request_value_with_the_policys():
    def policy(condition):
        return [{"Statement": [{"Effect": "Allow", "Action": "x:Y", "Resource": "*", "Condition": condition}]}]

    assert evaluate(policy({"NumericLessThan": {"s3:TlsVersion": "1.2"}}), "x:Y",
                    context={"s3:TlsVersion": "1.1"}).allowed
    assert not evaluate(policy({"NumericLessThan": {"s3:TlsVersion": "1.2"}}), "x:Y",
                        context={"s3:TlsVersion": "1.2"}).allowed
    assert evaluate(policy({"NumericGreaterThanEquals": {"k": "10"}}), "x:Y", context={"k": 10}).allowed
    assert not evaluate(policy({"NumericLessThan": {"k": "1"}}), "x:Y").allowed  # missing key


def test_unsupported_grammar_is_refused():
    with pytest.raises(UnsupportedPolicy):
        evaluate([{"Statement": [{"Effect": "Allow", "Action": "x:Y", "Resource": "*",
                                  "Condition": {"DateLessThan": {"k": "1"}}}]}], "x:Y", context={"k": "0"})
    with pytest.raises(UnsupportedPolicy):
        evaluate([{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "x:Y", "Resource": "*"}]}], "x:Y")


def test_audit_role_and_discovery_policies():
    audit = [load_policy("audit-role-permissions.json")]
    assert evaluate(audit, "iam:GetAccountAuthorizationDetails").allowed
    assert not evaluate(audit, "iam:CreateUser").allowed
    discovery = [load_policy("pipeline-discovery.json", AuditRoleName="IamAudit", OrganizationId="o-abc123")]
    ours = {"aws:ResourceOrgID": "o-abc123"}
    assert evaluate(discovery, "sts:AssumeRole", "arn:aws:iam::111122223333:role/IamAudit", ours).allowed
    assert not evaluate(discovery, "sts:AssumeRole", "arn:aws:iam::111122223333:role/Admin", ours).allowed
    # a role of the same name in an account of another organisation, or of none
    assert not evaluate(discovery, "sts:AssumeRole", "arn:aws:iam::111122223333:role/IamAudit",
                        {"aws:ResourceOrgID": "o-other"}).allowed
    assert not evaluate(discovery, "sts:AssumeRole", "arn:aws:iam::111122223333:role/IamAudit", {}).allowed
    # the role's path and the partition are part of the ARN
    gov = [load_policy("pipeline-discovery.json", AuditRoleName="IamAudit", OrganizationId="o-abc123",
                       Partition="aws-us-gov", AuditRolePath="/security/audit/")]
    assert evaluate(gov, "sts:AssumeRole", "arn:aws-us-gov:iam::111122223333:role/security/audit/IamAudit",
                    ours).allowed
    assert not evaluate(gov, "sts:AssumeRole", "arn:aws:iam::111122223333:role/IamAudit", ours).allowed
    for action in ("iam:ListOrganizationsFeatures", "organizations:ListPolicies", "organizations:ListTargetsForPolicy",
                   "organizations:ListDelegatedAdministrators", "organizations:ListAccountsForParent"):
        assert evaluate(discovery, action).allowed, action
    for action in ("organizations:AttachPolicy", "iam:EnableOrganizationsRootCredentialsManagement",
                   "organizations:DescribePolicy"):
        assert not evaluate(discovery, action).allowed, action
