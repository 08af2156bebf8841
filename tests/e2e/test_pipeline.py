"""The whole DAG on the emulated organisation: verdicts for named resources, idempotent reruns, faults."""

from __future__ import annotations

import gzip
import json

import pytest

from iam_audit.evaluate.catalogue import load_catalogue
from tests.conftest import account_of
from tests.e2e.conftest import fetch_results as results

pytestmark = pytest.mark.e2e


def status(verdicts, framework, check_id, account_id, resource_id):
    return verdicts[(framework, check_id, account_id, resource_id)][0]


def test_run_succeeds_and_covers_every_control_and_account(first_run, e2e_stack):
    result, verdicts, _ = first_run
    assert result.state == "success", (result.failed_tasks, result.log_file)
    accounts = {a["id"] for a in e2e_stack.emulator.manifest["accounts"]}
    automated = {(c.framework, c.check_id) for check in load_catalogue().checks for c in check.controls}
    without_certificates = {a["id"] for a in e2e_stack.emulator.manifest["accounts"] if a["profile"] == "none"}
    for account_id in accounts:
        covered = {(f, c) for (f, c, a, _r) in verdicts if a == account_id}
        certificates = {(c.framework, c.check_id)
                        for c in load_catalogue().check("expired_server_certificates").controls}
        expected = automated - (certificates if account_id in without_certificates else set())
        assert covered == expected, f"account {account_id} misses {expected - covered}"
    assert {s for s, _ in verdicts.values()} == {"pass", "fail"}, "no error expected in a clean run"


def test_named_resources(first_run, e2e_stack):
    _, v, _ = first_run
    manifest = e2e_stack.emulator.manifest
    weak, none, strong = (account_of(manifest, p) for p in ("weak", "none", "strong"))
    user = lambda account, name: f"arn:aws:iam::{account}:user/{name}"  # noqa: E731

    # MFA for console users
    assert status(v, "cis_v3.0.0", "1.10", weak, user(weak, "bob-nomfa")) == "fail"
    assert status(v, "cis_v3.0.0", "1.10", weak, user(weak, "alice-admin")) == "pass"
    assert status(v, "cis_v1.2.0", "1.2", weak, user(weak, "bob-nomfa")) == "fail"
    # unused credentials: 45 days in v3.0.0, 90 days in v1.2.0; never-used counts from creation
    assert status(v, "cis_v3.0.0", "1.12", weak, user(weak, "dave-newhire")) == "fail"
    assert status(v, "cis_v1.2.0", "1.3", weak, user(weak, "dave-newhire")) == "pass"
    assert status(v, "cis_v1.2.0", "1.3", weak, user(weak, "carol-stale")) == "fail"
    assert status(v, "cis_v3.0.0", "1.12", weak, user(weak, "svc-unused")) == "fail"
    assert status(v, "cis_v3.0.0", "1.12", weak, user(weak, "svc-legacy")) == "pass"  # old key is inactive
    # key rotation: only active keys count
    key_verdicts = {r: s for (f, c, a, r), (s, _) in v.items() if (f, c, a) == ("cis_v3.0.0", "1.14", weak)}
    assert sorted(key_verdicts.values()).count("fail") == 2  # svc-deploy (400 days), svc-unused (100 days)
    assert len(key_verdicts) == 5  # svc-deploy 1, svc-legacy 1 active, svc-two-keys 2, svc-unused 1
    assert status(v, "cis_v3.0.0", "1.13", weak, user(weak, "svc-two-keys")) == "fail"
    assert status(v, "cis_v3.0.0", "1.15", weak, user(weak, "svc-deploy")) == "fail"
    # password policy: none at all fails every password control
    for check_id in ("1.5", "1.6", "1.7", "1.8", "1.9", "1.10", "1.11"):
        assert status(v, "cis_v1.2.0", check_id, none, none) == "fail", check_id
        assert status(v, "cis_v1.2.0", check_id, strong, strong) == "pass", check_id
    assert status(v, "cis_v1.2.0", "1.10", weak, weak) == "fail"  # remembers 5
    # root
    assert status(v, "cis_v3.0.0", "1.4", weak, weak) == "fail"
    assert status(v, "cis_v3.0.0", "1.4", none, none) == "fail"  # an inactive root key still exists
    assert status(v, "cis_v3.0.0", "1.4", strong, strong) == "pass"
    assert status(v, "cis_v3.0.0", "1.5", weak, weak) == "pass"
    assert status(v, "cis_v3.0.0", "1.5", none, none) == "fail"
    assert status(v, "cis_v3.0.0", "1.6", weak, weak) == "fail"  # virtual, not hardware
    assert status(v, "cis_v3.0.0", "1.6", strong, strong) == "pass"
    assert status(v, "cis_v3.0.0", "1.7", weak, weak) == "fail"  # root used yesterday
    # support role, admin policies, certificates, analyzers, CloudShell
    assert status(v, "cis_v3.0.0", "1.17", strong, strong) == "pass"
    assert status(v, "cis_v3.0.0", "1.17", none, none) == "fail"  # attached to a group only
    legacy = f"arn:aws:iam::{weak}:policy/LegacyFullAdmin"
    assert status(v, "cis_v1.2.0", "1.22", weak, legacy) == "fail"  # created, even if unattached
    assert (("cis_v3.0.0", "1.16", weak, legacy)) not in v  # v3.0.0 only looks at attached policies
    assert status(v, "cis_v3.0.0", "1.16", weak, "arn:aws:iam::aws:policy/AdministratorAccess") == "fail"
    assert status(v, "cis_v3.0.0", "1.19", weak, f"arn:aws:iam::{weak}:server-certificate/legacy-cert") == "fail"
    assert status(v, "cis_v3.0.0", "1.20", strong, strong) == "pass"
    assert status(v, "cis_v3.0.0", "1.20", weak, weak) == "fail"
    assert status(v, "cis_v3.0.0", "1.22", weak, "arn:aws:iam::aws:policy/AWSCloudShellFullAccess") == "fail"


def test_raw_objects_are_partitioned_and_encrypted(first_run, e2e_stack, today):
    s3 = e2e_stack.boto3_client("s3")
    account_id = account_of(e2e_stack.emulator.manifest, "weak")
    prefix = f"iam/snapshot_date={today}/account_id={account_id}/"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=e2e_stack.bucket, Prefix=prefix)["Contents"]}
    assert prefix + "credential_report.json.gz" in keys and prefix + "_manifest.json" in keys
    head = s3.head_object(Bucket=e2e_stack.bucket, Key=prefix + "credential_report.json.gz")
    assert head["ServerSideEncryption"] == "AES256"
    body = s3.get_object(Bucket=e2e_stack.bucket, Key=prefix + "credential_report.json.gz")["Body"].read()
    assert json.loads(gzip.decompress(body))["Content"].startswith("user,arn,")


def test_rerun_of_the_same_date_is_idempotent(first_run, e2e_stack, run, today):
    """A rerun of the date gives the first clean run's verdicts and staging rows again, also after the
    faulted runs of tests/e2e/test_faults.py (collected before this module) left error verdicts."""
    _, before, _ = first_run
    assert first_run.staged_users > 0
    result = run(today)
    assert result.state == "success"
    after = results(e2e_stack, today)
    assert after == before
    with e2e_stack.postgres.connect(e2e_stack.database) as conn:
        assert conn.execute("SELECT count(*) FROM iam_stage.users WHERE snapshot_date = %s",
                            (today,)).fetchone()[0] == first_run.staged_users


def test_the_run_exports_its_verdicts_as_valid_ocsf_next_to_the_snapshot(first_run, e2e_stack, today):
    """export_ocsf wrote one valid OCSF Compliance Finding per control logic x resource of the run."""
    from jsonschema import Draft202012Validator
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

    from iam_audit.export.ocsf import OCSF_VERSION, export_key

    _, verdicts, _ = first_run
    s3 = e2e_stack.boto3_client("s3")
    body = s3.get_object(Bucket=e2e_stack.bucket, Key=export_key("iam", today))["Body"].read()
    findings = [json.loads(line) for line in gzip.decompress(body).decode().splitlines()]
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION))
    validator = Draft202012Validator(schema.get_class_schema("compliance_finding", profiles=["cloud"]))
    for finding in findings:
        assert not list(validator.iter_errors(finding)), finding["finding_info"]["uid"]
    # every framework verdict of the run is one check of exactly one finding, with the same status
    checks = {(c["uid"].split("/", 1)[0], c["uid"].split("/", 1)[1], f["cloud"]["account"]["uid"],
               f["resources"][0]["uid"]): c["status"].lower()
              for f in findings for c in f["compliance"]["checks"]}
    assert checks == {key: value[0] for key, value in verdicts.items()}
    uids = [f["finding_info"]["uid"] for f in findings]
    assert len(uids) == len(set(uids)) < len(verdicts)


def test_organisation_evidence_and_centralised_root_access(first_run, e2e_stack, today):
    """The run collected the organisation once: IH.11 fails every account (root access management is off
    in the demo organisation), and the evidence of CIS v7.0.0 2.1.2 flags exactly the member accounts
    left without a guardrail SCP; the manual controls have no verdict."""
    _, v, _ = first_run
    manifest = e2e_stack.emulator.manifest
    structure = manifest["organization"]
    for account in manifest["accounts"]:
        assert status(v, "iam_hygiene", "IH.11", account["id"], account["id"]) == "fail"
    assert not any(f == "cis_v7.0.0" and c.startswith("2.1.") for f, c, _a, _r in v)
    with e2e_stack.postgres.connect(e2e_stack.database) as conn:
        rows = conn.execute(
            "SELECT check_id, account_id, attention, detail FROM aws_policy_manual_evidence "
            "WHERE snapshot_date = %s AND framework = 'cis_v7.0.0'", (today,)).fetchall()
    flagged = {a for c, a, attention, _ in rows if c == "2.1.2" and attention}
    assert flagged == set(structure["unguarded_accounts"]) and flagged
    members = {a["id"] for a in manifest["accounts"]} - {manifest["management_account_id"]}
    assert {a for c, a, _, _ in rows if c == "2.1.2"} == members
    assert {c for c, *_ in rows} == {"2.1.1", "2.1.2", "2.1.4", "2.1.5", "2.1.6"}


def test_the_evidence_pack_task_stores_one_zip_next_to_the_snapshot(first_run, e2e_stack, today, monkeypatch):
    """build_evidence_pack with the trigger param on, against the first run's data: the zip arrives in S3
    under its key, holds the checked raw objects, and a second build of the date writes the same bytes."""
    import io
    import zipfile
    from datetime import UTC, datetime

    from iam_audit import tasks
    from iam_audit.export.evidence import evidence_key

    for name, value in e2e_stack.env.items():
        if name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")):
            monkeypatch.setenv(name, value)
    moment = datetime.fromisoformat(today).replace(tzinfo=UTC)
    plan = tasks.plan_run({"params": {"mode": "replay"}, "run_id": "evidence-test", "logical_date": moment})
    assert tasks.build_evidence_pack(plan, "postgres_default", "aws_default", wanted=False) == {"built": False}
    s3 = e2e_stack.boto3_client("s3")
    key = evidence_key("iam", moment.date())
    result = tasks.build_evidence_pack(plan, "postgres_default", "aws_default", wanted=True)
    assert result == {"built": True, "url": f"s3://{e2e_stack.bucket}/{key}"}
    first = s3.get_object(Bucket=e2e_stack.bucket, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        manifest = json.loads(archive.read(f"evidence-{today}/manifest.json"))
    accounts = {a["id"] for a in e2e_stack.emulator.manifest["accounts"]}
    assert {o["account_id"] for o in manifest["raw"]["objects"] if o["account_id"]} <= accounts
    assert all(m["matches_live_load_digest"] for m in manifest["raw"]["manifests"] if m["account_id"])
    tasks.build_evidence_pack(plan, "postgres_default", "aws_default", wanted=True)
    assert s3.get_object(Bucket=e2e_stack.bucket, Key=key)["Body"].read() == first
    versions = s3.list_objects_v2(Bucket=e2e_stack.bucket, Prefix=key.rsplit("/", 1)[0] + "/")["Contents"]
    assert [o["Key"] for o in versions] == [key]
