"""Least privilege and secrets: every AWS operation is allowed by the shipped read-only policies,
nothing mutates IAM or Organizations, and no secret reaches S3, Postgres, XCom or the logs."""

from __future__ import annotations

import gzip

import pytest
from iam_audit_dev.devenv.runner import metadata_url
from iam_audit_dev.devenv.stack import EMULATOR_SECRET_KEY
from sqlalchemy import create_engine, text

from iam_audit.evaluate.policies import allows, evaluate, iam_action, is_mutating, load_policy
from tests.old_policies import old_reader

pytestmark = pytest.mark.e2e
MANAGEMENT = "123456789012"


def test_every_operation_is_allowed_and_read_only(first_run, e2e_stack):
    """The run succeeded with the shipped policies enforced, and each authorisation request it made
    (action, resource ARN, condition keys, with the run's real bucket and prefix) is allowed by them."""
    result, _, calls = first_run
    assert result.state == "success", (result.failed_tasks, first_run.refused)
    assert first_run.refused == []
    from tests.e2e.conftest import policy_values

    values = policy_values(e2e_stack.emulator.url, e2e_stack.bucket)
    audit_role = [load_policy("audit-role-permissions.json", **values)]
    pipeline = [load_policy(name, **values)
                for name in ("pipeline-discovery.json", "s3-raw-writer.json", "s3-raw-reader.json")]
    requests = first_run.requests
    assert len({r["action"] for r in requests}) > 10, requests
    for r in requests:
        if r["action"] == "sts:GetCallerIdentity":  # the caller's partition; needs no permission, cannot be denied
            continue
        policies = audit_role if r["principal"].endswith(":role/IamAuditReadOnly") else pipeline
        decision = evaluate(policies, r["action"], r["resource"], r["context"])
        assert decision.allowed, f"{r} is refused by src/iam_audit/policies/ ({decision.decision})"
        assert not is_mutating(r["action"]), f"{r['action']} mutates IAM or Organizations"
    bucket_arn = f"arn:aws:s3:::{e2e_stack.bucket}"
    listings = [r for r in requests if r["action"] == "s3:ListBucket"]
    assert listings and all(r["resource"] == bucket_arn and r["context"]["s3:prefix"].startswith("iam/")
                            for r in listings), listings
    puts = [r for r in requests if r["action"] == "s3:PutObject"]
    assert puts and all(r["resource"].startswith(bucket_arn + "/iam/") for r in puts)
    actions = {(c["account_id"], iam_action(c["service"], c["action"])) for c in calls}
    member_actions = {a for acct, a in actions if acct != MANAGEMENT}
    assert "iam:GetAccountAuthorizationDetails" in member_actions and "sts:AssumeRole" not in member_actions


def test_the_old_reader_policy_would_have_refused_the_bucket_check(first_run, e2e_stack):
    """Negative case: HeadBucket's request (s3:ListBucket, no s3:prefix) under the reader policy of before."""
    bucket_arn = f"arn:aws:s3:::{e2e_stack.bucket}"
    assert not evaluate([old_reader(e2e_stack.bucket, "iam")], "s3:ListBucket", bucket_arn, {}).allowed
    # the run's own bucket check is a listing under the prefix, which both allow
    check = next(r for r in first_run.requests if r["action"] == "s3:ListBucket" and r["context"].get("s3:max-keys"))
    assert evaluate([old_reader(e2e_stack.bucket, "iam")], check["action"], check["resource"], check["context"]).allowed


def test_policies_refuse_what_the_pipeline_must_not_do():
    audit_role = [load_policy("audit-role-permissions.json")]
    for action in ("iam:CreateUser", "iam:DeleteAccessKey", "iam:PutUserPolicy", "iam:GetUser",
                   "organizations:CreateAccount", "s3:PutObject", "iam:ListUsers"):
        assert not allows(audit_role, action), action
    writer = [load_policy("s3-raw-writer.json", Bucket="b", Prefix="iam")]
    assert not allows(writer, "s3:DeleteObject") and not allows(writer, "s3:GetObject")


def _secrets(emulator, external_id: str) -> set[str]:
    issued = emulator.issued_credentials()
    assert issued, "the run must have assumed roles"
    assert any(c["external_id"] == external_id for c in issued), "AssumeRole must carry the external id"
    secrets = {EMULATOR_SECRET_KEY, external_id}
    for credential in issued:
        secrets |= {credential["secret_access_key"], credential["session_token"]}
    return {s for s in secrets if s and len(s) >= 16}


def test_secrets_never_persist(first_run, e2e_stack):
    secrets = _secrets(e2e_stack.emulator, e2e_stack.external_id)
    found: list[str] = []

    def scan(where: str, text: str) -> None:
        for secret in secrets:
            if secret in text:
                found.append(f"{where} contains a secret ({secret[:6]}...)")

    s3 = e2e_stack.boto3_client("s3")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=e2e_stack.bucket)
            for o in page.get("Contents", [])]
    assert keys
    for key in keys:
        body = s3.get_object(Bucket=e2e_stack.bucket, Key=key)["Body"].read()
        if key.endswith(".zip"):   # an evidence pack: every file in it
            import io
            import zipfile

            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                for member in archive.namelist():
                    scan(f"s3://{e2e_stack.bucket}/{key}!{member}", archive.read(member).decode())
            continue
        scan(f"s3://{e2e_stack.bucket}/{key}", (gzip.decompress(body) if key.endswith(".gz") else body).decode())

    with e2e_stack.postgres.connect(e2e_stack.database) as conn:
        tables = conn.execute("SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables "
                              "WHERE table_schema IN ('public', 'iam_stage')").fetchall()
        assert len(tables) > 10
        for (table,) in tables:
            for (row,) in conn.execute(f"SELECT t::text FROM {table} t"):  # noqa: S608 - names from the catalog
                scan(table, row)

    airflow_home = e2e_stack.env["AIRFLOW_HOME"]
    engine = create_engine(metadata_url(e2e_stack.env))  # the Airflow metadata database
    with engine.connect() as meta:
        xcoms = meta.execute(text("SELECT task_id, CAST(value AS TEXT) FROM xcom")).fetchall()
        assert xcoms
        for task_id, value in xcoms:
            scan(f"XCom of {task_id}", value or "")
        for (conf,) in meta.execute(text("SELECT CAST(conf AS TEXT) FROM dag_run")):
            scan("dag_run.conf", conf or "")
        rendered = meta.execute(text("SELECT task_id, CAST(rendered_fields AS TEXT) FROM rendered_task_instance_fields")
                                ).fetchall()
        assert any(task_id.startswith("check_") for task_id, _ in rendered)
        for task_id, fields in rendered:
            scan(f"rendered fields of {task_id}", fields or "")
    engine.dispose()

    from pathlib import Path

    logs = list(Path(airflow_home).rglob("*.log")) + list(Path(result_dir(first_run)).glob("dag-run-*.log"))
    assert logs
    for log in logs:
        scan(str(log), log.read_text(errors="replace"))
    assert not found, "\n".join(found)


def result_dir(first_run):
    return first_run[0].log_file.parent


def test_external_id_is_sent_and_tls_is_verified(e2e_stack):
    import boto3

    from iam_audit.aws import AwsTarget

    emulator = e2e_stack.emulator
    target = AwsTarget(session=boto3.Session(aws_access_key_id="AKIAEXTERNALIDTEST01",
                                             aws_secret_access_key="not-a-secret-but-long", region_name="us-east-1"),
                       endpoint_url=emulator.url)
    account_id = emulator.manifest["accounts"][1]["id"]
    target.assume_role(f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole", "audit-ext-id-42")
    assert any(c["external_id"] == "audit-ext-id-42" for c in emulator.issued_credentials())
    verified = AwsTarget(session=boto3.Session(region_name="us-east-1")).client("iam")
    # TLS verification on unless configured off: True or a CA bundle path, never False
    assert verified._endpoint.http_session._verify not in (False, None)
