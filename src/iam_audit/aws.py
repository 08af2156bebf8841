"""boto3 sessions and clients for the pipeline.

All clients share one botocore Config: the retry configuration (adaptive retries for throttling)
and timeouts, merged with the `aws_default` connection's `config_kwargs` (proxies, CA bundle,
timeouts), and the connection's endpoint_url, so that setting `extra.endpoint_url` sends every call
(STS, Organizations, IAM, S3, Access Analyzer, Account, EC2) to an AWS-compatible emulator.

Assumed-role sessions:
- carry the audit permissions as their session policy, so they can do no more than the audit
  needs whatever the assumed role allows (policies/audit-role-permissions.json);
- refresh their credentials through AssumeRole before they expire (botocore's
  RefreshableCredentials), so an extraction may outlive one credential lifetime.

boto3 Sessions are not thread-safe: every client is created under the target's lock and
cached, so worker threads only use clients (which are thread-safe).
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import boto3
import botocore.handlers
import botocore.session
import botocore.utils
from botocore.config import Config
from botocore.credentials import CredentialProvider, RefreshableCredentials
from dateutil.tz import tzutc

from iam_audit.evaluate.policies import POLICY_DIR

DEFAULT_REGION = "us-east-1"
# One parsed copy of the service models and endpoint rules (botocore's and boto3's data paths) for
# every session of the process: each new session would otherwise load and parse them again.
_SHARED_LOADER = boto3.Session(botocore_session=botocore.session.get_session())._session.get_component("data_loader")
SESSION_NAME = "iam-audit"
DEFAULT_SESSION_SECONDS = 3600
# AWS: "The plaintext that you use for both inline and managed session policies can't exceed
# 2,048 characters" (STS AssumeRole API reference, parameter Policy).
SESSION_POLICY_MAX_CHARS = 2048
SESSION_POLICY_FILE = "audit-role-permissions.json"


def audit_session_policy() -> str:
    """The audit permissions, minified, as the inline session policy of every AssumeRole."""
    document = json.loads((POLICY_DIR / SESSION_POLICY_FILE).read_text())
    text = json.dumps(document, separators=(",", ":"))
    if len(text) > SESSION_POLICY_MAX_CHARS:
        raise ValueError(f"policies/{SESSION_POLICY_FILE} is {len(text)} characters minified; an "
                         f"AssumeRole session policy may have at most {SESSION_POLICY_MAX_CHARS}")
    return text


def parse_timestamp(value):
    """botocore's timestamp parser with a fast path for UTC ISO 8601 (what IAM answers with: thousands of
    CreateDate/UpdateDate values in GetAccountAuthorizationDetails, where dateutil's general parser was
    about a fifth of an account's extraction CPU). Same value and tzinfo as botocore's; anything else is
    botocore's parse_timestamp."""
    if isinstance(value, str) and len(value) >= 20 and value[10:11] == "T" and (value[-1] == "Z"
                                                                               or value.endswith("+00:00")):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.utcoffset() == timedelta(0):
                return parsed.replace(tzinfo=tzutc())
    return botocore.utils.parse_timestamp(value)


# The services an audited account's session makes clients for (botocore's event names use the
# hyphenised service id).
AUDIT_SERVICES = frozenset({"iam", "account", "ec2", "accessanalyzer", "sts"})
# audit session -> the services whose built-in handlers it has (names and service ids)
_HANDLED_SERVICES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _register_builtin_handlers(core: botocore.session.Session, keep) -> None:
    """Register botocore's built-in handlers whose event names a service that `keep` accepts ("*" for
    the handlers of every service), in botocore's order; never the documentation ones."""
    events = core.get_component("event_emitter")
    for event, handler, *order in botocore.handlers.BUILTIN_HANDLERS:
        parts = event.split(".")
        if parts[0] == "docs" or not keep(parts[1] if len(parts) > 1 else "*"):
            continue
        if order and order[0] is botocore.handlers.REGISTER_FIRST:
            events.register_first(event, handler)
        elif order and order[0] is botocore.handlers.REGISTER_LAST:
            events.register_last(event, handler)
        else:
            events.register(event, handler)


def audit_botocore_session() -> botocore.session.Session:
    """A botocore session with botocore's built-in event handlers for AUDIT_SERVICES only: those of
    no particular service ("*" or none) and of these services, without the other services' (S3's 37,
    RDS's, Glacier's, ...) and the documentation ones. Every client starts from a copy of its
    session's event hooks; with all 127 handlers that copy was about a third of creating a client,
    and an audited account has 27 clients (24 of them Access Analyzer, one per region). A client of
    another service gets its service's handlers first (ensure_service_handlers)."""
    core = botocore.session.Session(include_builtin_handlers=False)
    _register_builtin_handlers(core, lambda service: service == "*" or service in AUDIT_SERVICES)
    _HANDLED_SERVICES[core] = set(AUDIT_SERVICES)
    return core


def ensure_service_handlers(core: botocore.session.Session, service_name: str) -> None:
    """Before an audit session's first client of a service outside AUDIT_SERVICES, register that
    service's built-in handlers. Other sessions have them all already."""
    handled = _HANDLED_SERVICES.get(core)
    if handled is None or service_name in handled:
        return
    service_id = core.get_service_model(service_name).service_id.hyphenize()
    if service_id not in handled:
        _register_builtin_handlers(core, lambda service: service == service_id)
    handled.update((service_name, service_id))


def share_loader(session):
    """Make a boto3 Session read service models through the process's loader, which parses each
    model once. A new session has a new loader: the models of STS, S3 (about 0.1 CPU-s each) and
    EC2 (0.2 CPU-s) were parsed again for every account, by the connection's session, the S3 hook's
    and each assumed-role session. Other sessions (aiobotocore's) are returned unchanged."""
    if isinstance(session, boto3.Session):
        session._session.register_component("data_loader", _SHARED_LOADER)
    return session


def client_config(max_attempts: int | None = None, connection_config: Config | None = None) -> Config:
    """The pipeline's retries and timeouts, overridden by what the connection's config_kwargs set."""
    attempts = max_attempts or int(os.environ.get("IAM_AUDIT_AWS_MAX_ATTEMPTS", "10"))
    config = Config(
        retries={"mode": "adaptive", "max_attempts": attempts},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=32,
        user_agent_extra="iam-audit",
    )
    return config.merge(connection_config) if connection_config is not None else config


class _FixedProvider(CredentialProvider):
    METHOD = "assume-role"

    def __init__(self, credentials):
        self._credentials = credentials

    def load(self):
        return self._credentials


@dataclass
class AwsTarget:
    """Where and how to call AWS: the base session and the settings every client gets."""

    session: boto3.Session
    endpoint_url: str | None = None
    region_name: str = DEFAULT_REGION
    verify: bool | str | None = None
    max_attempts: int | None = None
    connection_config: Config | None = None  # the connection's extra.config_kwargs
    session_seconds: int = DEFAULT_SESSION_SECONDS
    session_policy: str | None = field(default_factory=audit_session_policy)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _clients: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _partition: str | None = field(default=None, init=False, repr=False, compare=False)

    def config(self) -> Config:
        return client_config(self.max_attempts, self.connection_config)

    def client(self, service: str, region_name: str | None = None, session: boto3.Session | None = None):
        """One client per (session, service, region), created under the lock (sessions are not thread-safe)."""
        session = session or self.session
        region = region_name or self.region_name
        key = (session, service, region)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                ensure_service_handlers(session._session, service)
                client = self._clients[key] = session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url, verify=self.verify,
                    config=self.config())
            return client

    def partition(self) -> str:
        """The caller's partition (aws, aws-us-gov, aws-cn) from its identity's ARN."""
        if self._partition is None:
            arn = self.client("sts").get_caller_identity()["Arn"]
            self._partition = arn.split(":")[1]
        return self._partition

    def assume_role(self, role_arn: str, external_id: str | None = None) -> boto3.Session:
        """A session in another account, capped by the audit session policy, with credentials that
        AssumeRole refreshes before they expire. The credentials live only in memory."""
        kwargs = {"RoleArn": role_arn, "RoleSessionName": SESSION_NAME, "DurationSeconds": self.session_seconds}
        if external_id:
            kwargs["ExternalId"] = external_id
        if self.session_policy:
            kwargs["Policy"] = self.session_policy
        sts = self.client("sts")

        def fetch() -> dict:
            creds = sts.assume_role(**kwargs)["Credentials"]
            return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                    "token": creds["SessionToken"], "expiry_time": creds["Expiration"].isoformat()}

        started = datetime.now(UTC)
        first = fetch()  # fails here, not at the first audited call, when the role cannot be assumed
        credentials = RefreshableCredentials.create_from_metadata(first, fetch, "assume-role")
        # botocore refreshes 15 (advisory) and 10 (mandatory) minutes before expiry; scale that down for
        # shorter lifetimes (AWS allows 900 s), or fresh credentials would count as expired.
        lifetime = (datetime.fromisoformat(first["expiry_time"]) - started).total_seconds()
        credentials._advisory_refresh_timeout = min(15 * 60, lifetime / 4)
        credentials._mandatory_refresh_timeout = min(10 * 60, lifetime / 6)
        core = audit_botocore_session()
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
        core.get_component("credential_provider").insert_before("env", _FixedProvider(credentials))
        # after boto3.Session, which adds its data path to the session's loader
        return share_loader(boto3.Session(region_name=self.region_name, botocore_session=core))


def target_from_connection(aws_conn_id: str = "aws_default") -> AwsTarget:
    """Build the AWS target from an Airflow connection (AwsBaseHook resolves credentials and role chaining)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="sts")
    conn_config = hook.conn_config
    return AwsTarget(
        session=share_loader(hook.get_session()),
        endpoint_url=conn_config.endpoint_url,
        region_name=conn_config.region_name or DEFAULT_REGION,
        verify=hook.verify,
        connection_config=hook.config,
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
            "ExternalId: deploy the read-only audit role IamAuditReadOnly with deploy/cloudformation/ (a StackSet "
            "for member accounts, a stack for the management account), or set iam_audit_role_name to the name "
            "of a read-only role that exists in every account; also allow sts:AssumeRole "
            "on it to the pipeline's principal (policies/pipeline-discovery.json)")


def dataset_remedy(code: str) -> str:
    """What to fix when an account-level read is refused."""
    if code in ("InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken"):
        return "the assumed role's credentials were rejected"
    return ("the audit role lacks this permission or a service control policy denies it: attach "
            "policies/audit-role-permissions.json to the audit role and exempt it from the SCP")
