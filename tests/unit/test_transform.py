"""Pure transforms: raw payloads as AWS returns them, into staging rows."""

import pytest

from iam_audit.ingest import transform
from iam_audit.ingest.transform import COLUMNS, MalformedPayload

HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,"
    "cert_2_active,cert_2_last_rotated"
)
ROOT = (
    "<root_account>,arn:aws:iam::111122223333:root,2020-01-01T00:00:00+00:00,not_supported,"
    "2026-10-01T10:00:00+00:00,not_supported,not_supported,true,true,2025-01-01T00:00:00+00:00,"
    "N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
)
NEVER_LOGGED_IN = (
    "dave,arn:aws:iam::111122223333:user/dave,2026-09-01T00:00:00+00:00,true,no_information,"
    "2026-09-01T00:00:00+00:00,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
)
KEY_USER = (
    "svc,arn:aws:iam::111122223333:user/svc,2025-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,"
    "false,2025-01-01T00:00:00+00:00,N/A,N/A,N/A,true,2026-10-01T00:00:00+00:00,"
    "2026-11-20T08:00:00+00:00,us-east-1,s3,false,N/A,false,N/A"
)
REPORT = {"GeneratedTime": "2026-11-29T01:00:00+00:00", "Content": "\n".join([HEADER, ROOT, NEVER_LOGGED_IN, KEY_USER])}


def rows_by_user(rows):
    cols = COLUMNS["credential_report"]
    return {row[0]: dict(zip(cols, row, strict=True)) for row in rows}


def test_credential_report_placeholders_become_null():
    rows = rows_by_user(transform.credential_report(REPORT)["credential_report"])
    root = rows["<root_account>"]
    assert root["is_root"] is True
    assert root["password_enabled"] is None  # not_supported
    assert root["password_last_used"] == "2026-10-01T10:00:00+00:00"
    assert root["mfa_active"] is True and root["access_key_1_active"] is True
    assert root["access_key_1_last_used_date"] is None  # N/A: never used
    dave = rows["dave"]
    assert dave["password_enabled"] is True and dave["password_last_used"] is None  # no_information
    assert dave["password_last_changed"] == "2026-09-01T00:00:00+00:00"
    svc = rows["svc"]
    assert svc["access_key_1_active"] is False and svc["access_key_1_last_rotated"] == "2025-01-01T00:00:00+00:00"
    assert svc["access_key_2_last_used_service"] == "s3"
    assert all(len(r) == len(COLUMNS["credential_report"]) for r in transform.credential_report(REPORT)[
        "credential_report"])


def test_access_keys_get_last_use_from_the_report_slot_with_the_same_creation_time():
    keys = {"AccessKeyMetadata": [
        {"UserName": "svc", "AccessKeyId": "AKIAOLD", "Status": "Inactive", "CreateDate": "2025-01-01T00:00:00Z"},
        {"UserName": "svc", "AccessKeyId": "AKIANEW", "Status": "Active", "CreateDate": "2026-10-01T00:00:00Z"},
    ]}
    rows = transform.access_keys(keys, REPORT)["access_keys"]
    by_id = {r[2]: dict(zip(COLUMNS["access_keys"], r, strict=True)) for r in rows}
    assert by_id["AKIANEW"]["last_used_date"] == "2026-11-20T08:00:00+00:00"
    assert by_id["AKIANEW"]["user_arn"] == "arn:aws:iam::111122223333:user/svc"
    assert by_id["AKIAOLD"]["last_used_date"] is None


def test_no_password_policy_is_a_row_saying_so():
    (row,) = transform.password_policy({"PasswordPolicy": None})["password_policy"]
    assert row[0] is False and len(row) == len(COLUMNS["password_policy"])


def test_authorization_details_attachments_and_unused_aws_policies():
    admin = {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}
    payload = {
        "UserDetailList": [{
            "UserName": "u", "Arn": "arn:aws:iam::1:user/u", "GroupList": ["g"],
            "AttachedManagedPolicies": [
                {"PolicyName": "Admin", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}],
            "UserPolicyList": [{"PolicyName": "inline", "PolicyDocument": "%7B%22Statement%22%3A%5B%5D%7D"}],
        }],
        "GroupDetailList": [{"GroupName": "g", "Arn": "arn:aws:iam::1:group/g", "AttachedManagedPolicies": [],
                             "GroupPolicyList": []}],
        "RoleDetailList": [],
        "Policies": [
            {"PolicyName": "AdministratorAccess", "Arn": "arn:aws:iam::aws:policy/AdministratorAccess",
             "AttachmentCount": 1, "DefaultVersionId": "v1",
             "PolicyVersionList": [{"VersionId": "v1", "IsDefaultVersion": True, "Document": admin}]},
            {"PolicyName": "Unused", "Arn": "arn:aws:iam::aws:policy/Unused", "AttachmentCount": 0,
             "PolicyVersionList": []},
            {"PolicyName": "Mine", "Arn": "arn:aws:iam::1:policy/Mine", "AttachmentCount": 0,
             "DefaultVersionId": "v2", "PolicyVersionList": [
                 {"VersionId": "v1", "IsDefaultVersion": False, "Document": {"Statement": []}},
                 {"VersionId": "v2", "IsDefaultVersion": True, "Document": admin}]},
        ],
    }
    out = transform.authorization_details(payload)
    policies = {r[1]: dict(zip(COLUMNS["managed_policies"], r, strict=True)) for r in out["managed_policies"]}
    assert set(policies) == {"AdministratorAccess", "Mine"}  # unused AWS-managed policies are dropped
    assert policies["Mine"]["is_aws_managed"] is False and policies["Mine"]["attachment_count"] == 0
    assert '"Action": "*"' in policies["Mine"]["document"]
    assert out["group_memberships"] == [("arn:aws:iam::1:user/u", "g")]
    assert out["inline_policies"][0][3:] == ("inline", '{"Statement": []}')  # URL-encoded JSON is decoded


def test_access_key_user_arn_is_awss_with_path_and_partition():
    gov_user = ("svc,arn:aws-us-gov:iam::111122223333:user/ops/ci/svc,2025-01-01T00:00:00+00:00,false,N/A,N/A,N/A,"
                "false,true,2026-10-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A")
    report = {"Content": "\n".join([HEADER, gov_user])}
    keys = {"AccessKeyMetadata": [
        {"UserName": "svc", "AccessKeyId": "AKIAGOV", "Status": "Active", "CreateDate": "2026-10-01T00:00:00Z"},
        {"UserName": "late", "AccessKeyId": "AKIALATE", "Status": "Active", "CreateDate": "2026-10-02T00:00:00Z"},
    ]}
    details = {"UserDetailList": [{"UserName": "late", "Arn": "arn:aws-cn:iam::111122223333:user/team/late"}]}
    rows = transform.transform_dataset("access_keys", keys, "111122223333",
                                       {"credential_report": report, "authorization_details": details})
    arns = {r[2]: r[1] for r in rows["access_keys"]}
    assert arns == {"AKIAGOV": "arn:aws-us-gov:iam::111122223333:user/ops/ci/svc",
                    "AKIALATE": "arn:aws-cn:iam::111122223333:user/team/late"}
    import pytest

    with pytest.raises(ValueError, match="'late'"):
        transform.access_keys(keys, report)

def test_account_summary_keeps_account_password_present():
    summary = {"SummaryMap": {"AccountMFAEnabled": 0, "AccountAccessKeysPresent": 0, "AccountPasswordPresent": 0}}
    (row,) = transform.account_summary(summary)["account_summary"]
    values = dict(zip(COLUMNS["account_summary"], row, strict=True))
    assert values["account_password_present"] == 0 and values["account_mfa_enabled"] == 0
    # moto and older responses have no such key: unknown, stored NULL
    (row,) = transform.account_summary({"SummaryMap": {"AccountMFAEnabled": 1, "AccountAccessKeysPresent": 0}})[
        "account_summary"]
    assert dict(zip(COLUMNS["account_summary"], row, strict=True))["account_password_present"] is None


# ---- malformed payloads: a MalformedPayload naming the field, never NULLs or empty lists -------


def report(*lines, header=HEADER):
    return {"GeneratedTime": "2026-11-29T01:00:00+00:00", "Content": "\n".join([header, *lines])}


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (report(KEY_USER, header=HEADER.replace("mfa_active", "mfa_enabled")), ["header lacks", "mfa_active"]),
        (report(KEY_USER, header=HEADER.replace(",cert_2_last_rotated", "")), ["cert_2_last_rotated"]),
        (report(KEY_USER.rsplit(",", 3)[0]), ["line 2", "short", "cert_2_active"]),
        (report(KEY_USER + ",extra"), ["line 2", "more values"]),
        (report(NEVER_LOGGED_IN.replace(",true,no_information", ",treu,no_information")),
         ["user 'dave'", "password_enabled", "'treu'"]),
        # a user name with a comma that is not quoted shifts every later column: refused, never misread
        (report(KEY_USER.replace("svc,arn:aws:iam::111122223333:user/svc",
                                 "svc,ops,arn:aws:iam::111122223333:user/svc,ops")),
         ["line 2", "more values"]),
        (report(NEVER_LOGGED_IN.replace(",true,no_information", ",not_supported,no_information")),
         ["password_enabled", "not_supported"]),  # only root's password_enabled may be not_supported
        (report(KEY_USER.replace("false,false,2025", "false,yes,2025")), ["access_key_1_active", "'yes'"]),
        (report(KEY_USER.replace("2026-11-20T08:00:00+00:00", "last tuesday")),
         ["access_key_2_last_used_date", "neither a timestamp"]),
        (report(KEY_USER.replace("arn:aws:iam::111122223333:user/svc", "svc")), ["arn", "'svc'"]),
        ({"GeneratedTime": "x"}, ["no Content"]),
    ],
)
def test_malformed_credential_reports_name_the_field(payload, words):
    with pytest.raises(MalformedPayload) as raised:
        transform.transform_dataset("credential_report", payload, "111122223333", {})
    message = str(raised.value)
    assert message.startswith("credential_report: ")
    for word in words:
        assert word in message


def test_a_root_row_may_say_not_supported_and_the_report_may_grow_columns():
    extended = report(ROOT + ",x", KEY_USER + ",y", header=HEADER + ",some_new_column")
    rows = rows_by_user(transform.credential_report(extended)["credential_report"])
    assert rows["<root_account>"]["password_enabled"] is None and rows["svc"]["access_key_2_active"] is True


def test_booleans_are_read_whatever_their_case():
    shouted = report(ROOT.replace(",true,true,", ",TRUE,True,").replace("not_supported,2026", "NOT_SUPPORTED,2026"),
                     NEVER_LOGGED_IN.replace(",true,no_information", ",TRUE,no_information"),
                     KEY_USER.replace(",true,2026-10-01", ",True,2026-10-01")
                     .replace("false,false,2025", "FALSE,False,2025"))
    rows = rows_by_user(transform.credential_report(shouted)["credential_report"])
    assert rows["<root_account>"]["mfa_active"] is True and rows["<root_account>"]["access_key_1_active"] is True
    assert rows["<root_account>"]["password_enabled"] is None
    assert rows["dave"]["password_enabled"] is True
    assert rows["svc"]["mfa_active"] is False and rows["svc"]["access_key_1_active"] is False
    assert rows["svc"]["access_key_2_active"] is True


def test_a_user_name_with_a_comma_is_read_from_its_quoted_field():
    # IAM user names may hold commas (+=,.@_-); the report is CSV (RFC 4180), which quotes such a field
    name = "ops,svc"
    line = KEY_USER.replace("svc,arn:aws:iam::111122223333:user/svc",
                            f'"{name}","arn:aws:iam::111122223333:user/{name}"')
    rows = rows_by_user(transform.credential_report(report(line))["credential_report"])
    assert set(rows) == {name}
    assert rows[name]["arn"] == f"arn:aws:iam::111122223333:user/{name}"
    assert rows[name]["access_key_2_active"] is True and rows[name]["access_key_2_last_used_service"] == "s3"
    from iam_audit.ingest.extract import users_with_access_keys

    assert users_with_access_keys(report(line)) == [name]


GAAD = {"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": [], "Policies": []}


@pytest.mark.parametrize(
    ("dataset", "payload", "words"),
    [
        *[("authorization_details", {k: v for k, v in GAAD.items() if k != key}, [f"has no {key}"])
          for key in GAAD],
        ("authorization_details", {**GAAD, "RoleDetailList": None}, ["RoleDetailList is a NoneType"]),
        ("authorization_details", {**GAAD, "UserDetailList": [{"UserName": "u"}]}, ["UserDetailList[0] has no Arn"]),
        ("authorization_details",
         {**GAAD, "GroupDetailList": [{"GroupName": "g", "Arn": "arn:aws:iam::1:group/g",
                                       "AttachedManagedPolicies": [{"PolicyName": "X"}]}]},
         ["GroupDetailList[0].AttachedManagedPolicies[0] has no PolicyArn"]),
        ("virtual_mfa_devices", {}, ["has no VirtualMFADevices"]),
        ("virtual_mfa_devices", {"VirtualMFADevices": [{"User": {"Arn": "x"}}]},
         ["VirtualMFADevices[0] has no SerialNumber"]),
        ("virtual_mfa_devices", {"VirtualMFADevices": [{"SerialNumber": "s", "User": {"UserName": "root"}}]},
         ["VirtualMFADevices[0].User has no Arn"]),
        ("account_summary", {}, ["has no SummaryMap"]),
        ("account_summary", {"SummaryMap": {"AccountMFAEnabled": 1}}, ["SummaryMap has no AccountAccessKeysPresent"]),
        ("account_summary", {"SummaryMap": {"AccountMFAEnabled": "yes", "AccountAccessKeysPresent": 0}},
         ["AccountMFAEnabled is 'yes'"]),
        ("password_policy", {}, ["has no PasswordPolicy"]),
        ("password_policy", {"PasswordPolicy": {"MinimumPasswordLength": "14"}}, ["MinimumPasswordLength is '14'"]),
        ("password_policy", {"PasswordPolicy": {"RequireSymbols": "true"}}, ["RequireSymbols is 'true'"]),
        ("access_keys", {}, ["has no AccessKeyMetadata"]),
        ("access_keys", {"AccessKeyMetadata": [{"UserName": "u", "AccessKeyId": "AKIA1"}]},
         ["AccessKeyMetadata[0] has no Status"]),
        ("server_certificates", {"ServerCertificateMetadataList": [{"Arn": "a", "ServerCertificateName": "n"}]},
         ["has no Expiration"]),
        ("regions", {"Regions": [{"Endpoint": "x"}]}, ["Regions[0] has no RegionName"]),
        ("access_analyzers", {"AnalyzersByRegion": {"us-east-1": [{"arn": "a", "status": "ACTIVE"}]}},
         ["AnalyzersByRegion.us-east-1[0] has no type"]),
        ("access_analyzers", {"Analyzers": []}, ["has no AnalyzersByRegion"]),
        ("identity_providers", {"SAMLProviderList": []}, ["has no OpenIDConnectProviderList"]),
    ],
)
def test_drifted_responses_name_the_missing_field(dataset, payload, words):
    with pytest.raises(MalformedPayload) as raised:
        transform.transform_dataset(dataset, payload, "111122223333", {})
    assert str(raised.value).startswith(f"{dataset}: ")
    for word in words:
        assert word in str(raised.value)


def test_access_keys_are_unusable_when_the_report_they_join_is_malformed():
    keys = {"AccessKeyMetadata": [{"UserName": "svc", "AccessKeyId": "AKIA1", "Status": "Active"}]}
    bad = report(KEY_USER, header=HEADER.replace("access_key_2_last_used_date", "key_2_used"))
    with pytest.raises(MalformedPayload, match=r"access_keys: .*credential report.*access_key_2_last_used_date"):
        transform.transform_dataset("access_keys", keys, "111122223333", {"credential_report": bad})
