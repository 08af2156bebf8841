"""Pure transforms: raw payloads as AWS returns them, into staging rows."""

from iam_audit import transform
from iam_audit.transform import COLUMNS

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
    rows = transform.access_keys(keys, REPORT, "111122223333")["access_keys"]
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


def test_account_summary_keeps_account_password_present():
    summary = {"SummaryMap": {"AccountMFAEnabled": 0, "AccountAccessKeysPresent": 0, "AccountPasswordPresent": 0}}
    (row,) = transform.account_summary(summary)["account_summary"]
    values = dict(zip(COLUMNS["account_summary"], row, strict=True))
    assert values["account_password_present"] == 0 and values["account_mfa_enabled"] == 0
    # moto and older responses have no such key: unknown, stored NULL
    (row,) = transform.account_summary({"SummaryMap": {"AccountMFAEnabled": 1, "AccountAccessKeysPresent": 0}})[
        "account_summary"]
    assert dict(zip(COLUMNS["account_summary"], row, strict=True))["account_password_present"] is None
