"""boto3 sessions and clients for the pipeline.

All clients share one botocore Config (adaptive retries for throttling, timeouts)
and the connection's endpoint_url, so that setting `extra.endpoint_url` on the
`aws_default` connection sends every call (STS, Organizations, IAM, S3, Access
Analyzer, Account, EC2) to an AWS-compatible emulator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import boto3
import botocore.session
from botocore.config import Config

DEFAULT_REGION = "us-east-1"
# One parsed copy of the service models and endpoint rules for every assumed-role session of
# the process: a new botocore session would load and parse them again for each account.
_SHARED_LOADER = botocore.session.get_session().get_component("data_loader")
SESSION_NAME = "iam-audit"


def client_config(max_attempts: int | None = None) -> Config:
    attempts = max_attempts or int(os.environ.get("IAM_AUDIT_AWS_MAX_ATTEMPTS", "10"))
    return Config(
        retries={"mode": "adaptive", "max_attempts": attempts},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=32,
        user_agent_extra="iam-audit",
    )


@dataclass
class AwsTarget:
    """Where and how to call AWS: the base session and the settings every client gets."""

    session: boto3.Session
    endpoint_url: str | None = None
    region_name: str = DEFAULT_REGION
    verify: bool | str | None = None
    max_attempts: int | None = None

    def client(self, service: str, region_name: str | None = None, session: boto3.Session | None = None):
        return (session or self.session).client(
            service,
            region_name=region_name or self.region_name,
            endpoint_url=self.endpoint_url,
            verify=self.verify,
            config=client_config(self.max_attempts),
        )

    def assume_role(self, role_arn: str, external_id: str | None = None) -> boto3.Session:
        """A session in another account. The credentials live only in memory."""
        kwargs = {"RoleArn": role_arn, "RoleSessionName": SESSION_NAME, "DurationSeconds": 3600}
        if external_id:
            kwargs["ExternalId"] = external_id
        creds = self.client("sts").assume_role(**kwargs)["Credentials"]
        core = botocore.session.get_session()
        core.register_component("data_loader", _SHARED_LOADER)
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=self.region_name,
            botocore_session=core,
        )


def target_from_connection(aws_conn_id: str = "aws_default") -> AwsTarget:
    """Build the AWS target from an Airflow connection (AwsBaseHook resolves credentials and role chaining)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="sts")
    conn_config = hook.conn_config
    return AwsTarget(
        session=hook.get_session(),
        endpoint_url=conn_config.endpoint_url,
        region_name=conn_config.region_name or DEFAULT_REGION,
        verify=hook.verify,
    )


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code") or type(exc).__name__


# Errors a retry cannot fix: the caller lacks a permission (IAM policy, SCP), the role is
# missing or does not trust the caller, or the credentials are invalid. Throttling, 5xx and
# network errors are transient: botocore's retry mode and then Airflow's task retries handle them.
PERMANENT_ERRORS = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException",
    "InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure", "SignatureDoesNotMatch",
    "OptInRequired", "NoSuchEntity", "AWSOrganizationsNotInUseException",
})


def is_permanent(code: str | None) -> bool:
    return code in PERMANENT_ERRORS


def assume_role_remedy(role_arn: str, code: str) -> str:
    """What to fix when the audit role cannot be assumed."""
    if code in ("InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"):
        return "the aws_default connection's credentials are not valid: fix its access key or role"
    return (f"{role_arn} does not exist or does not trust the pipeline's principal with the configured "
            "ExternalId. OrganizationAccountAccessRole exists only in accounts that Organizations created "
            "(never in the management account or in accounts that joined by invitation): deploy the audit "
            "role with deploy/cloudformation/ (a StackSet for member accounts, a stack for the management "
            "account), or set iam_audit_role_name to a role that exists everywhere; also allow sts:AssumeRole "
            "on it to the pipeline's principal (include/policies/pipeline-discovery.json)")


def dataset_remedy(code: str) -> str:
    """What to fix when an account-level read is refused."""
    if code in ("InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken"):
        return "the assumed role's credentials were rejected"
    return ("the audit role lacks this permission or a service control policy denies it: attach "
            "include/policies/audit-role-permissions.json to the audit role and exempt it from the SCP")
