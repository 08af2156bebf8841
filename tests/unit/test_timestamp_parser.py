"""The fast timestamp parser of assumed-role sessions gives exactly what botocore's parser gives."""

from __future__ import annotations

import botocore.utils
import pytest

from iam_audit.aws import parse_timestamp


@pytest.mark.parametrize("value", [
    "2026-11-30T01:02:03Z", "2026-11-30T01:02:03.123Z", "2026-11-30T01:02:03.123456Z",
    "2026-11-30T01:02:03+00:00", "2026-11-30T01:02:03.5+00:00", "2026-11-30T01:02:03+02:00",
    "2026-11-30 01:02:03Z", "Mon, 30 Nov 2026 01:02:03 GMT", "1700000000", 1700000000, 1700000000.25,
    "2026-11-30T01:02:03",
])
def test_same_value_and_zone_as_botocore(value):
    ours, theirs = parse_timestamp(value), botocore.utils.parse_timestamp(value)
    assert ours == theirs
    assert ours.utcoffset() == theirs.utcoffset()
    # the serialised form in the raw snapshot (dateutil's zone object for "Z" depends on the local zone)
    assert ours.isoformat() == theirs.isoformat()


def test_invalid_timestamp_is_an_error_as_in_botocore():
    with pytest.raises(ValueError):
        parse_timestamp("not a timestamp")


def test_assumed_role_sessions_use_it(emulator):
    import boto3

    from iam_audit.aws import AwsTarget

    target = AwsTarget(session=boto3.Session(region_name="us-east-1", aws_access_key_id="AKIAEMULATORDEMO0001",
                                             aws_secret_access_key="x"), endpoint_url=emulator.url)
    account = emulator.manifest["accounts"][0]["id"]
    session = target.assume_role(f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole")
    factory = session._session.get_component("response_parser_factory")
    assert factory._defaults["timestamp_parser"] is parse_timestamp
