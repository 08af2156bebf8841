"""The organisation data sets over HTTP: collected once with the discovery credentials from the
emulator's demo organisation (OU tree, SCPs and RCPs with their targets, delegated administrators,
centralised root access through IAM's real operations), stored under organization/ with a manifest,
staged; a refused call is that data set's 'error' and nothing else; absent, corrupt or malformed
stored data is staged as 'error' too."""

from __future__ import annotations

import json

import boto3
import pytest

from iam_audit.aws import AwsTarget
from iam_audit.ingest import organization
from iam_audit.ingest.raw_store import S3RawStore

from .conftest import KEY_ID, SECRET, s3

SNAPSHOT = "2026-11-03"
PREFIX = "iam"


def target(emulator) -> AwsTarget:
    return AwsTarget(session=boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                           region_name="us-east-1"), endpoint_url=emulator.url, max_attempts=2)


def test_demo_organisation_is_collected_with_real_shapes(emulator):
    results = organization.collect_organization(target(emulator))
    assert {name: r["status"] for name, r in results.items()} == dict.fromkeys(organization.ORG_DATASETS, "ok")
    structure = emulator.manifest["organization"]
    features = results["organization_features"]["payload"]
    assert features["OrganizationId"].startswith("o-") and features["EnabledFeatures"] == []
    units = results["organization_units"]["payload"]
    assert units["Organization"]["MasterAccountId"] == emulator.manifest["management_account_id"]
    parents = {a["Id"]: a["ParentId"] for a in units["Accounts"]}
    ous = {u["Name"]: u["Id"] for u in units["OrganizationalUnits"]}
    assert set(ous) == {"Security", "Workloads", "Sandbox", "Prod", "NonProd"}
    assert {u["Id"]: u["ParentId"] for u in units["OrganizationalUnits"]}[ous["Prod"]] == ous["Workloads"]
    for account_id in structure["unguarded_accounts"]:
        assert parents[account_id] == structure["root_id"]
    for account_id, ou in structure["placement"].items():
        assert parents[account_id] == ous[ou]
    policies = {p["Name"]: p for p in results["organization_policies"]["payload"]["Policies"]}
    assert policies["FullAWSAccess"]["AwsManaged"] is True
    assert {t["TargetId"] for t in policies["GuardrailBaseline"]["Targets"]} == {
        ous["Security"], ous["Workloads"], ous["Sandbox"]}
    assert policies["DataPerimeterTransport"]["Type"] == "RESOURCE_CONTROL_POLICY"
    admins = results["organization_delegated_admins"]["payload"]
    assert {(a["Id"], s["ServicePrincipal"]) for a in admins["DelegatedAdministrators"] for s in a["Services"]} == {
        (d["account_id"], d["service_principal"]) for d in structure["delegated_administrators"]}
    assert admins["ResourcePolicy"] is None  # no delegation policy: ResourcePolicyNotFoundException


def test_centralised_root_access_through_iams_own_operations(emulator):
    iam = target(emulator).client("iam")
    try:
        answer = iam.enable_organizations_root_credentials_management()
        assert answer["EnabledFeatures"] == ["RootCredentialsManagement"]
        results = organization.collect_organization(target(emulator))
        assert results["organization_features"]["payload"]["EnabledFeatures"] == ["RootCredentialsManagement"]
    finally:
        iam.disable_organizations_root_credentials_management()
    assert iam.list_organizations_features()["EnabledFeatures"] == []
    # a member account's credentials are refused, as AWS refuses them
    management = emulator.manifest["management_account_id"]
    member = next(a["id"] for a in emulator.manifest["accounts"] if a["id"] != management)
    sts = target(emulator).client("sts")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{member}:role/OrganizationAccountAccessRole",
                            RoleSessionName="member")["Credentials"]
    member_iam = boto3.client("iam", endpoint_url=emulator.url, region_name="us-east-1",
                              aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                              aws_session_token=creds["SessionToken"])
    with pytest.raises(member_iam.exceptions.AccountNotManagementOrDelegatedAdministratorException):
        member_iam.list_organizations_features()


@pytest.mark.parametrize(("service", "action", "dataset"), [
    ("iam", "ListOrganizationsFeatures", "organization_features"),
    ("organizations", "ListTargetsForPolicy", "organization_policies"),
    ("organizations", "ListDelegatedAdministrators", "organization_delegated_admins"),
    ("organizations", "ListOrganizationalUnitsForParent", "organization_units"),
])
def test_a_refused_call_is_its_data_sets_error_only(emulator, service, action, dataset):
    emulator.set_faults([{"service": service, "action": action, "error": "AccessDenied"}])
    results = organization.collect_organization(target(emulator))
    assert results[dataset]["status"] == "error" and results[dataset]["error_code"] in (
        "AccessDenied", "AccessDeniedException")
    assert {n for n, r in results.items() if r["status"] == "ok"} == set(organization.ORG_DATASETS) - {dataset}


def _staged(db, table: str) -> list[tuple]:
    return db.execute(f"SELECT * FROM iam_stage.{table} ORDER BY 2, 3", ).fetchall()  # noqa: S608


def test_stored_under_the_snapshot_and_staged(emulator, bucket, db, postgres, database):
    store = S3RawStore(bucket)
    emulator.set_faults([{"service": "iam", "action": "ListOrganizationsFeatures", "error": "AccessDenied"}])
    manifest = organization.collect_and_store(target(emulator), store, PREFIX, SNAPSHOT, "run-1")
    keys = {o["Key"] for o in s3(emulator).list_objects_v2(Bucket=bucket)["Contents"]}
    base = f"{PREFIX}/snapshot_date={SNAPSHOT}/organization/"
    assert keys == {base + "_manifest.json"} | {base + f"{d}.json.gz" for d in organization.ORG_DATASETS
                                                 if d != "organization_features"}
    assert manifest["datasets"]["organization_features"]["status"] == "error"
    status = organization.load_organization_facts(store, PREFIX, SNAPSHOT, lambda: postgres.connect(database))
    assert status["organization_features"] == "error: AccessDenied"
    assert {k for k, v in status.items() if v == "ok"} == set(organization.ORG_DATASETS) - {"organization_features"}
    accounts = {r[1] for r in _staged(db, "organization_parents") if r[2] == "ACCOUNT"}
    assert accounts == {a["id"] for a in emulator.manifest["accounts"]}
    assert any(r[3] == "GuardrailBaseline" for r in _staged(db, "organization_policies"))
    # a replay reads the same objects again: staged the same, nothing duplicated
    again = organization.load_organization_facts(store, PREFIX, SNAPSHOT, lambda: postgres.connect(database))
    assert again == status
    assert len(_staged(db, "organization_datasets")) == len(organization.ORG_DATASETS)


def test_absent_corrupt_or_malformed_stored_data_is_staged_as_error(emulator, bucket, db, postgres, database):
    store = S3RawStore(bucket)
    connect = lambda: postgres.connect(database)  # noqa: E731
    absent = organization.load_organization_facts(store, PREFIX, "2026-11-04", connect)
    assert set(absent.values()) == {"error: NotCollected"}
    organization.collect_and_store(target(emulator), store, PREFIX, SNAPSHOT, "run-1")
    # a data set rewritten with the wrong shape (its checksum then differs too: re-record it)
    key = organization.dataset_key(PREFIX, SNAPSHOT, "organization_features")
    import hashlib

    from iam_audit.ingest import layout

    blob = layout.encode({"OrganizationId": "o-x", "EnabledFeatures": "RootCredentialsManagement"})
    store.put(key, blob)
    mkey = organization.manifest_key(PREFIX, SNAPSHOT)
    manifest = json.loads(store.get(mkey))
    manifest["datasets"]["organization_features"]["sha256"] = hashlib.sha256(blob).hexdigest()
    store.put(mkey, json.dumps(manifest).encode())
    store.put(organization.dataset_key(PREFIX, SNAPSHOT, "organization_policies"), b"not gzip")
    status = organization.load_organization_facts(store, PREFIX, SNAPSHOT, connect)
    assert status["organization_features"] == "error: MalformedPayload"
    assert status["organization_policies"] == "error: MalformedPayload"
    assert status["organization_units"] == "ok"
    reason = db.execute("SELECT error_message FROM iam_stage.organization_datasets "
                        "WHERE dataset = 'organization_features' AND snapshot_date = %s", (SNAPSHOT,)).fetchone()[0]
    assert "EnabledFeatures is not a list" in reason
    store.put(mkey, b"{not json")
    broken = organization.load_organization_facts(store, PREFIX, SNAPSHOT, connect)
    assert set(broken.values()) == {"error: MalformedPayload"}
