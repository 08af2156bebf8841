"""PROTOTYPE (bench only): assumed-role sessions that share one botocore data loader.

Shipped AwsTarget.assume_role returns a new boto3.Session per account; each new botocore session
loads and parses the service models and endpoint rules again for every client it creates (iam,
account, ec2, and one accessanalyzer client per enabled region). With one shared loader
(botocore caches parsed models per loader instance) every account after the first reuses them.
Same credentials, same clients, same calls.
"""

from __future__ import annotations

import boto3
import botocore.session
from iam_audit import aws

_LOADER = botocore.session.get_session().get_component("data_loader")


def install():
    original = aws.AwsTarget.assume_role

    def assume_role(self, role_arn: str, external_id: str | None = None) -> boto3.Session:
        kwargs = {"RoleArn": role_arn, "RoleSessionName": aws.SESSION_NAME, "DurationSeconds": 3600}
        if external_id:
            kwargs["ExternalId"] = external_id
        creds = self.client("sts").assume_role(**kwargs)["Credentials"]
        core = botocore.session.get_session()
        core.register_component("data_loader", _LOADER)
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=self.region_name,
            botocore_session=core,
        )

    aws.AwsTarget.assume_role = assume_role
    return lambda: setattr(aws.AwsTarget, "assume_role", original)
