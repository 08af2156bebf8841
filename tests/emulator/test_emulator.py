"""End-to-end tests of the local AWS emulator (moto server + CIS-realistic patches)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from iam_audit_dev.emulator.process import Emulator, start_emulator

REGION = "us-east-1"
RETRY = Config(retries={"mode": "standard", "max_attempts": 3})


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = start_emulator()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def manifest(emulator: Emulator) -> dict[str, Any]:
    return emulator.seed(accounts=2, users=8, seed=42)


@pytest.fixture(autouse=True)
def _no_faults(emulator: Emulator) -> Iterator[None]:
    emulator.clear_faults()
    yield
    emulator.clear_faults()


def mgmt_session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="AKIATESTMANAGEMENT01",
        aws_secret_access_key="fake-secret",
        region_name=REGION,
    )


def member_session(emulator: Emulator, account_id: str) -> boto3.Session:
    sts = mgmt_session().client("sts", endpoint_url=emulator.url, config=RETRY)
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
        RoleSessionName="cis-audit",
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=REGION,
    )


def account_by_profile(manifest: dict[str, Any], profile: str) -> dict[str, Any]:
    """First account with that profile (the management account is the `strong` one)."""
    return next(a for a in manifest["accounts"] if a["profile"] == profile)


def credential_report(emulator: Emulator, account_id: str) -> list[dict[str, str]]:
    iam = member_session(emulator, account_id).client("iam", endpoint_url=emulator.url)
    iam.generate_credential_report()
    content = iam.get_credential_report()["Content"].decode()
    return list(csv.DictReader(io.StringIO(content)))


def test_manifest_shape(manifest: dict[str, Any]) -> None:
    assert manifest["management_account_id"] == "123456789012"
    accounts = manifest["accounts"]
    assert len(accounts) == 3
    assert accounts[0] == {
        "id": "123456789012",
        "name": "management",
        "profile": "strong",
        "email": "management@example.com",
    }
    assert [a["profile"] for a in accounts[1:]] == ["weak", "none"]
    assert [a["name"] for a in accounts[1:]] == ["dev-sandbox", "legacy-apps"]
    assert manifest["users_per_account"] == 8


def test_organizations_lists_all_accounts(emulator: Emulator, manifest: dict[str, Any]) -> None:
    org = mgmt_session().client("organizations", endpoint_url=emulator.url)
    listed = {a["Id"]: a["Name"] for a in org.list_accounts()["Accounts"]}
    assert listed == {a["id"]: a["name"] for a in manifest["accounts"]}


def test_credential_report_root_and_users(emulator: Emulator, manifest: dict[str, Any]) -> None:
    weak = account_by_profile(manifest, "weak")
    rows = credential_report(emulator, weak["id"])
    root = rows[0]
    assert root["user"] == "<root_account>"
    assert root["arn"] == f"arn:aws:iam::{weak['id']}:root"
    assert root["password_enabled"] == "not_supported"
    assert root["password_last_changed"] == "not_supported"
    assert root["password_next_rotation"] == "not_supported"
    assert root["mfa_active"] == "true"
    assert root["access_key_1_active"] == "true"
    assert root["access_key_1_last_used_region"] == "us-east-1"
    assert root["password_last_used"] not in ("N/A", "no_information")

    users = {r["user"]: r for r in rows[1:]}
    assert list(users) == [
        "alice-admin", "bob-nomfa", "carol-stale", "dave-newhire",
        "svc-deploy", "svc-legacy", "svc-two-keys", "svc-unused",
    ]
    svc = users["svc-unused"]
    assert svc["password_enabled"] == "false"
    for col in ("password_last_used", "password_last_changed", "password_next_rotation"):
        assert svc[col] == "N/A"
    assert svc["access_key_1_active"] == "true"
    assert svc["access_key_1_last_used_date"] == "N/A"
    assert svc["access_key_1_last_used_region"] == "N/A"
    assert svc["access_key_1_last_used_service"] == "N/A"
    assert svc["access_key_2_active"] == "false"
    assert svc["access_key_2_last_rotated"] == "N/A"

    dave = users["dave-newhire"]
    assert dave["password_enabled"] == "true"
    assert dave["password_last_used"] == "no_information"
    assert dave["mfa_active"] == "true"
    assert users["bob-nomfa"]["mfa_active"] == "false"

    deploy = users["svc-deploy"]
    assert deploy["access_key_1_last_used_region"] == "us-east-1"
    assert deploy["access_key_1_last_used_service"] == "s3"
    legacy = users["svc-legacy"]
    assert legacy["access_key_1_active"] == "false"
    assert legacy["access_key_2_active"] == "true"


def test_root_mfa_strong_vs_weak(emulator: Emulator, manifest: dict[str, Any]) -> None:
    strong = account_by_profile(manifest, "strong")
    weak = account_by_profile(manifest, "weak")

    s_iam = member_session(emulator, strong["id"]).client("iam", endpoint_url=emulator.url)
    w_iam = member_session(emulator, weak["id"]).client("iam", endpoint_url=emulator.url)

    s_sum = s_iam.get_account_summary()["SummaryMap"]
    w_sum = w_iam.get_account_summary()["SummaryMap"]
    assert s_sum["AccountMFAEnabled"] == 1
    assert s_sum["AccountAccessKeysPresent"] == 0
    assert w_sum["AccountMFAEnabled"] == 1
    assert w_sum["AccountAccessKeysPresent"] == 1

    root_serial = f"arn:aws:iam::{weak['id']}:mfa/root-account-mfa-device"
    w_devices = w_iam.list_virtual_mfa_devices()["VirtualMFADevices"]
    root_devices = [d for d in w_devices if d["SerialNumber"] == root_serial]
    assert len(root_devices) == 1
    assert root_devices[0]["User"]["Arn"] == f"arn:aws:iam::{weak['id']}:root"

    # hardware MFA: enabled, but no virtual device for root
    s_devices = s_iam.list_virtual_mfa_devices()["VirtualMFADevices"]
    assert not [d for d in s_devices if "root-account-mfa-device" in d["SerialNumber"]]
    assert {d["User"]["UserName"] for d in s_devices} >= {"alice-admin", "carol-stale"}

    rows = credential_report(emulator, strong["id"])
    assert rows[0]["mfa_active"] == "true"
    assert rows[0]["access_key_1_active"] == "false"


def test_account_summary_reports_root_password_presence(emulator: Emulator, manifest: dict[str, Any]) -> None:
    weak = account_by_profile(manifest, "weak")
    iam = member_session(emulator, weak["id"]).client("iam", endpoint_url=emulator.url)
    assert iam.get_account_summary()["SummaryMap"]["AccountPasswordPresent"] == 1
    assert credential_report(emulator, weak["id"])[0]["password_enabled"] == "not_supported"
    emulator.set_root(account_id=weak["id"], password=False)
    try:
        assert iam.get_account_summary()["SummaryMap"]["AccountPasswordPresent"] == 0
        assert credential_report(emulator, weak["id"])[0]["password_enabled"] == "false"
    finally:
        emulator.set_root(account_id=weak["id"], password=True)


def test_none_profile_account(emulator: Emulator, manifest: dict[str, Any]) -> None:
    none = account_by_profile(manifest, "none")
    iam = member_session(emulator, none["id"]).client("iam", endpoint_url=emulator.url)
    with pytest.raises(ClientError) as exc:
        iam.get_account_password_policy()
    assert exc.value.response["Error"]["Code"] == "NoSuchEntity"
    rows = credential_report(emulator, none["id"])
    assert rows[0]["mfa_active"] == "false"
    assert rows[0]["password_last_used"] == "no_information"
    assert rows[0]["access_key_1_active"] == "false"
    assert rows[0]["access_key_1_last_used_date"] == "N/A"
    summary = iam.get_account_summary()["SummaryMap"]
    assert summary["AccountMFAEnabled"] == 0
    assert summary["AccountAccessKeysPresent"] == 1
    assert not [
        d for d in iam.list_virtual_mfa_devices()["VirtualMFADevices"]
        if "root-account-mfa-device" in d["SerialNumber"]
    ]
    aa = member_session(emulator, none["id"]).client("accessanalyzer", endpoint_url=emulator.url)
    assert aa.list_analyzers()["analyzers"] == []


def test_small_user_count() -> None:
    with start_emulator() as emu:
        m = emu.seed(accounts=1, users=2, seed=7)
        assert [a["profile"] for a in m["accounts"]] == ["strong", "weak"]
        rows = credential_report(emu, m["accounts"][1]["id"])
        assert [r["user"] for r in rows[1:]] == ["alice-admin", "bob-nomfa"]


def test_password_policy_strong(emulator: Emulator, manifest: dict[str, Any]) -> None:
    strong = account_by_profile(manifest, "strong")
    iam = member_session(emulator, strong["id"]).client("iam", endpoint_url=emulator.url)
    pol = iam.get_account_password_policy()["PasswordPolicy"]
    assert pol["MinimumPasswordLength"] == 14
    assert pol["PasswordReusePrevention"] == 24


def test_access_analyzer_regions(emulator: Emulator, manifest: dict[str, Any]) -> None:
    weak = account_by_profile(manifest, "weak")
    strong = account_by_profile(manifest, "strong")
    w = member_session(emulator, weak["id"])
    s = member_session(emulator, strong["id"])

    def names(session: boto3.Session, region: str) -> list[str]:
        aa = session.client("accessanalyzer", endpoint_url=emulator.url, region_name=region)
        return [a["name"] for a in aa.list_analyzers(type="ACCOUNT")["analyzers"]]

    assert names(w, "us-east-1") == ["account-analyzer-us-east-1"]
    assert names(w, "eu-west-1") == []
    assert names(s, "eu-west-1") == ["account-analyzer-eu-west-1"]
    analyzer = (
        s.client("accessanalyzer", endpoint_url=emulator.url)
        .list_analyzers()["analyzers"][0]
    )
    assert analyzer["status"] == "ACTIVE"
    assert analyzer["arn"].startswith(f"arn:aws:access-analyzer:us-east-1:{strong['id']}:")


def test_server_certificates(emulator: Emulator, manifest: dict[str, Any]) -> None:
    weak = account_by_profile(manifest, "weak")
    iam = member_session(emulator, weak["id"]).client("iam", endpoint_url=emulator.url)
    certs = iam.list_server_certificates()["ServerCertificateMetadataList"]
    assert [c["ServerCertificateName"] for c in certs] == ["legacy-cert"]
    assert certs[0]["Expiration"] < certs[0]["UploadDate"].__class__.now(
        certs[0]["Expiration"].tzinfo
    )


def test_injected_access_denied_is_per_account(
    emulator: Emulator, manifest: dict[str, Any]
) -> None:
    strong = account_by_profile(manifest, "strong")
    weak = account_by_profile(manifest, "weak")
    emulator.set_faults(
        [
            {
                "account_id": strong["id"],
                "service": "iam",
                "action": "GetAccountAuthorizationDetails",
                "error": "AccessDenied",
                "times": None,
            }
        ]
    )
    s_iam = member_session(emulator, strong["id"]).client("iam", endpoint_url=emulator.url)
    w_iam = member_session(emulator, weak["id"]).client("iam", endpoint_url=emulator.url)
    with pytest.raises(ClientError) as exc:
        s_iam.get_account_authorization_details(Filter=["User"])
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    users = w_iam.get_account_authorization_details(Filter=["User"])["UserDetailList"]
    assert {u["UserName"] for u in users} >= {"alice-admin", "svc-deploy"}
    # other actions in the faulted account keep working
    assert s_iam.get_account_summary()["SummaryMap"]["Users"] == 8


def test_assume_role_fault_by_target(emulator: Emulator, manifest: dict[str, Any]) -> None:
    weak = account_by_profile(manifest, "weak")
    strong = account_by_profile(manifest, "strong")
    emulator.set_faults(
        [{"service": "sts", "action": "AssumeRole", "error": "AccessDenied",
          "target_account_id": weak["id"]}]
    )
    with pytest.raises(ClientError) as exc:
        member_session(emulator, weak["id"])
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    member_session(emulator, strong["id"])


def test_throttling_absorbed_by_standard_retries(
    emulator: Emulator, manifest: dict[str, Any]
) -> None:
    strong = account_by_profile(manifest, "strong")
    session = member_session(emulator, strong["id"])
    emulator.set_faults(
        [{"account_id": strong["id"], "service": "iam", "action": "GetAccountSummary",
          "error": "Throttling", "times": 2}]
    )
    emulator.reset_calls()
    iam = session.client("iam", endpoint_url=emulator.url, config=RETRY)
    summary = iam.get_account_summary()["SummaryMap"]
    assert summary["AccountMFAEnabled"] == 1
    calls = [
        c for c in emulator.calls()
        if c["account_id"] == strong["id"] and c["action"] == "GetAccountSummary"
    ]
    assert calls[0]["count"] == 3

    # without retries the throttle surfaces as a proper ClientError
    emulator.set_faults(
        [{"account_id": strong["id"], "service": "iam", "action": "GetAccountSummary",
          "error": "Throttling", "times": 1}]
    )
    no_retry = session.client(
        "iam", endpoint_url=emulator.url,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    with pytest.raises(ClientError) as exc:
        no_retry.get_account_summary()
    assert exc.value.response["Error"]["Code"] == "Throttling"


def test_s3_fault_and_roundtrip(emulator: Emulator, manifest: dict[str, Any]) -> None:
    s3 = mgmt_session().client("s3", endpoint_url=emulator.url, config=RETRY)
    s3.create_bucket(Bucket="audit-results")
    s3.put_object(Bucket="audit-results", Key="a.json", Body=b"{}")
    assert s3.get_object(Bucket="audit-results", Key="a.json")["Body"].read() == b"{}"
    emulator.set_faults([{"service": "s3", "action": "PutObject", "error": "AccessDenied"}])
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="audit-results", Key="b.json", Body=b"{}")
    assert exc.value.response["Error"]["Code"] == "AccessDenied"


def test_credential_report_never_ready(emulator: Emulator, manifest: dict[str, Any]) -> None:
    weak = account_by_profile(manifest, "weak")
    emulator.set_faults(
        [{"account_id": weak["id"], "service": "iam", "action": "GenerateCredentialReport",
          "error": "NeverReady"}]
    )
    iam = member_session(emulator, weak["id"]).client("iam", endpoint_url=emulator.url)
    assert iam.generate_credential_report()["State"] == "STARTED"
    with pytest.raises(ClientError) as exc:
        iam.get_credential_report()
    assert exc.value.response["Error"]["Code"] == "ReportInProgress"
    emulator.clear_faults()
    assert iam.get_credential_report()["Content"].startswith(b"user,arn")


def test_call_counting(emulator: Emulator, manifest: dict[str, Any]) -> None:
    weak = account_by_profile(manifest, "weak")
    session = member_session(emulator, weak["id"])
    emulator.reset_calls()
    iam = session.client("iam", endpoint_url=emulator.url)
    iam.list_virtual_mfa_devices()
    iam.list_virtual_mfa_devices()
    session.client("ec2", endpoint_url=emulator.url).describe_regions()
    calls = {(c["account_id"], c["service"], c["action"]): c["count"] for c in emulator.calls()}
    assert calls == {
        (weak["id"], "iam", "ListVirtualMFADevices"): 2,
        (weak["id"], "ec2", "DescribeRegions"): 1,
    }
    emulator.reset_calls()
    assert emulator.calls() == []


def test_gaad_policies(emulator: Emulator, manifest: dict[str, Any]) -> None:
    weak = account_by_profile(manifest, "weak")
    iam = member_session(emulator, weak["id"]).client("iam", endpoint_url=emulator.url)
    details = iam.get_account_authorization_details(Filter=["LocalManagedPolicy", "User"])
    local = {p["PolicyName"]: p for p in details["Policies"]}
    assert set(local) == {"FullAdminAccess", "LegacyFullAdmin", "ReadOnlyBilling", "DeployPolicy"}
    assert local["LegacyFullAdmin"]["AttachmentCount"] == 0
    assert local["FullAdminAccess"]["AttachmentCount"] == 1
    assert all(p["PolicyId"] for p in local.values())
    users = {u["UserName"]: u for u in details["UserDetailList"]}
    bob = users["bob-nomfa"]["AttachedManagedPolicies"]
    assert [p["PolicyName"] for p in bob] == ["AWSCloudShellFullAccess"]
    assert users["svc-deploy"]["UserPolicyList"][0]["PolicyName"] == "inline-s3"
    # copy-on-write of AWS-managed policies keeps attachment counts per account
    aws = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AWSCloudShellFullAccess")["Policy"]
    assert aws["AttachmentCount"] == 1
    mgmt = mgmt_session().client("iam", endpoint_url=emulator.url)
    aws_m = mgmt.get_policy(PolicyArn="arn:aws:iam::aws:policy/AWSCloudShellFullAccess")["Policy"]
    assert aws_m["AttachmentCount"] == 0


def _aws_managed(policies: list[dict[str, Any]]) -> set[str]:
    return {p["Arn"] for p in policies if p["Arn"].startswith("arn:aws:iam::aws:policy/")}


def test_gaad_lists_aws_managed_policies_only_where_used(emulator: Emulator, manifest: dict[str, Any]) -> None:
    weak = account_by_profile(manifest, "weak")
    iam = member_session(emulator, weak["id"]).client("iam", endpoint_url=emulator.url)
    cloudshell = "arn:aws:iam::aws:policy/AWSCloudShellFullAccess"
    details = iam.get_account_authorization_details()
    attached = {p["PolicyArn"]
                for key in ("UserDetailList", "GroupDetailList", "RoleDetailList")
                for entity in details[key] for p in entity["AttachedManagedPolicies"]}
    listed = _aws_managed(details["Policies"])
    assert cloudshell in listed and "arn:aws:iam::aws:policy/AdministratorAccess" in listed
    assert listed == {a for a in attached if a.startswith("arn:aws:iam::aws:policy/")}
    assert all(p["AttachmentCount"] >= 1 for p in details["Policies"] if p["Arn"] in listed)
    # customer-managed policies are listed attached or not
    assert "LegacyFullAdmin" in {p["PolicyName"] for p in details["Policies"]}
    assert _aws_managed(iam.get_account_authorization_details(Filter=["AWSManagedPolicy"])["Policies"]) == listed
    # the management account does not use AWSCloudShellFullAccess: its GAAD does not list it
    mgmt = mgmt_session().client("iam", endpoint_url=emulator.url)
    assert cloudshell not in _aws_managed(mgmt.get_account_authorization_details()["Policies"])
    # a policy used only as a permissions boundary is in use
    boundary = "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess"
    assert boundary not in listed
    iam.put_role_permissions_boundary(RoleName="app-runtime", PermissionsBoundary=boundary)
    try:
        assert boundary in _aws_managed(iam.get_account_authorization_details()["Policies"])
    finally:
        iam.delete_role_permissions_boundary(RoleName="app-runtime")
    assert boundary not in _aws_managed(iam.get_account_authorization_details()["Policies"])


def test_set_root_endpoint(emulator: Emulator, manifest: dict[str, Any]) -> None:
    none = account_by_profile(manifest, "none")
    emulator.set_root(
        account_id=none["id"], mfa="virtual", password_last_used_days_ago=5,
        keys=[{"active": True, "created_days_ago": 10, "last_used_days_ago": 1}],
    )
    try:
        rows = credential_report(emulator, none["id"])
        assert rows[0]["mfa_active"] == "true"
        assert rows[0]["access_key_1_active"] == "true"
        assert rows[0]["access_key_1_last_used_service"] == "s3"
    finally:
        emulator.set_root(
            account_id=none["id"], mfa="none", password_last_used_days_ago=None,
            keys=[{"active": False, "created_days_ago": 500}],
        )
