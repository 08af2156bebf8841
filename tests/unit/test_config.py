import pytest

from iam_audit.config import ConfigError, build_config, parse_account_ids
from iam_audit.plan import select_frameworks


def test_defaults():
    config = build_config({"iam_audit_bucket": "my-audit-bucket"})
    assert config.role_name == "IamAuditReadOnly"
    assert config.accounts is None
    assert config.role_arn("111122223333") == "arn:aws:iam::111122223333:role/IamAuditReadOnly"
    assert config.warnings == ()


@pytest.mark.parametrize("name", ["OrganizationAccountAccessRole", "organizationaccountaccessrole"])
def test_the_organizations_admin_role_is_refused_unless_opted_in(name):
    with pytest.raises(ConfigError) as err:
        build_config({"iam_audit_bucket": "my-audit-bucket", "iam_audit_role_name": name})
    message = str(err.value)
    assert "iam_audit_role_name" in message and "iam_audit_allow_organization_access_role" in message
    assert "administrator" in message and "IamAuditReadOnly" in message
    with pytest.raises(ConfigError, match="iam_audit_allow_organization_access_role"):
        build_config({"iam_audit_bucket": "my-audit-bucket", "iam_audit_role_name": name,
                      "iam_audit_allow_organization_access_role": "false"})
    config = build_config({"iam_audit_bucket": "my-audit-bucket", "iam_audit_role_name": name,
                           "iam_audit_allow_organization_access_role": "True"})
    assert config.role_name == name
    assert len(config.warnings) == 1 and "administrator role" in config.warnings[0]


def test_the_opt_in_must_be_a_boolean():
    with pytest.raises(ConfigError, match="must be true or false"):
        build_config({"iam_audit_bucket": "my-audit-bucket", "iam_audit_allow_organization_access_role": "maybe"})


@pytest.mark.parametrize(
    ("raw", "expected_fragment"),
    [
        ("not json", "not JSON"),
        ('{"a": 1}', "got dict"),
        ('"111122223333"', "got str"),
        ('["1234"]', "'1234'"),
        ("[111122223333]", "111122223333"),
        ('["11112222333a"]', "'11112222333a'"),
        ("[]", "empty list"),
    ],
)
def test_bad_account_lists_name_the_value(raw, expected_fragment):
    with pytest.raises(ConfigError) as err:
        build_config({"iam_audit_bucket": "b-ok", "iam_audit_accounts": raw})
    assert "iam_audit_accounts" in str(err.value)
    assert expected_fragment in str(err.value)


def test_duplicates_are_dropped_with_a_warning():
    ids, warnings = parse_account_ids('["111122223333", "444455556666", "111122223333"]')
    assert ids == ("111122223333", "444455556666")
    assert "111122223333" in warnings[0]


@pytest.mark.parametrize("bucket", [None, "", "Bad_Bucket", "a", "x" * 64])
def test_bucket_is_required_and_valid(bucket):
    with pytest.raises(ConfigError, match="iam_audit_bucket"):
        build_config({"iam_audit_bucket": bucket})


@pytest.mark.parametrize("role", ["arn:aws:iam::1:role/x", "has space", "x" * 65, "semi;colon"])
def test_role_name_is_validated(role):
    with pytest.raises(ConfigError, match="iam_audit_role_name"):
        build_config({"iam_audit_bucket": "bucket-ok", "iam_audit_role_name": role})


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        build_config({"iam_audit_bucket": None, "iam_audit_role_name": "bad role", "iam_audit_accounts": "[1]"})
    message = str(err.value)
    assert "iam_audit_bucket" in message and "iam_audit_role_name" in message and "iam_audit_accounts" in message


def test_select_frameworks():
    available = ("cis_v1.2.0", "cis_v3.0.0")
    assert select_frameworks(None, available) == list(available)
    assert select_frameworks(["cis_v3.0.0"], available) == ["cis_v3.0.0"]
    with pytest.raises(ConfigError, match="cis_v9"):
        select_frameworks(["cis_v9"], available)


def test_empty_organisation_fails_before_extraction():
    import boto3

    from iam_audit.aws import AwsTarget
    from iam_audit.config import AuditConfig
    from iam_audit.ingest.discover import discover_accounts

    target = AwsTarget(session=boto3.Session(region_name="us-east-1"))  # not called: the listing decides
    suspended = [{"Id": "111122223333", "Name": "old", "Status": "SUSPENDED"}]
    for listing in ([], suspended):
        with pytest.raises(ConfigError, match="no ACTIVE accounts"):
            discover_accounts(target, AuditConfig(bucket="b-ok"), None, listing)
    picked = discover_accounts(target, AuditConfig(bucket="b-ok"), None,
                               suspended + [{"Id": "444455556666", "Name": "live", "State": "ACTIVE"}])
    assert picked == [{"account_id": "444455556666", "account_name": "live"}]


@pytest.mark.parametrize("external_id", ["x", "has space", "semi;colon"])
def test_external_id_is_validated(external_id):
    with pytest.raises(ConfigError, match="iam_audit_external_id"):
        build_config({"iam_audit_bucket": "bucket-ok", "iam_audit_external_id": external_id})


@pytest.mark.parametrize("path", ["security", "/security", "security/", "/has space/", "/x" * 300 + "/",
                                  "arn:aws:iam::1:role/x/"])
def test_role_path_is_validated(path):
    with pytest.raises(ConfigError, match="iam_audit_role_path"):
        build_config({"iam_audit_bucket": "bucket-ok", "iam_audit_role_path": path})


def test_role_path_and_partition_shape_the_role_arn():
    config = build_config({"iam_audit_bucket": "bucket-ok", "iam_audit_role_path": "/security/audit/",
                           "iam_audit_role_name": "Auditor"})
    assert config.role_arn("111122223333", "aws-cn") == "arn:aws-cn:iam::111122223333:role/security/audit/Auditor"


def test_accounts_per_task_defaults_to_one_and_is_validated():
    assert build_config({"iam_audit_bucket": "b-ok"}).accounts_per_task == 1
    assert build_config({"iam_audit_bucket": "b-ok", "iam_audit_accounts_per_task": " 25 "}).accounts_per_task == 25
    for bad in ("0", "-3", "2.5", "many", "1001"):
        with pytest.raises(ConfigError, match=r"iam_audit_accounts_per_task='?.*is not a whole number from 1 to 1000"):
            build_config({"iam_audit_bucket": "b-ok", "iam_audit_accounts_per_task": bad})


def test_securityhub_region_is_optional_and_validated():
    assert build_config({"iam_audit_bucket": "b-ok"}).securityhub_region is None
    config = build_config({"iam_audit_bucket": "b-ok", "iam_audit_securityhub_region": " eu-west-1 "})
    assert config.securityhub_region == "eu-west-1"
    assert build_config({"iam_audit_bucket": "b-ok",
                         "iam_audit_securityhub_region": "us-gov-west-1"}).securityhub_region == "us-gov-west-1"
    for bad in ("Europe", "eu-west", "arn:aws:securityhub:eu-west-1"):
        with pytest.raises(ConfigError, match=r"iam_audit_securityhub_region='.*' is not an AWS region name"):
            build_config({"iam_audit_bucket": "b-ok", "iam_audit_securityhub_region": bad})
