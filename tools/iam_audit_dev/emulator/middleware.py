"""WSGI middleware in front of moto: control endpoints, call counting, faults, Access Analyzer."""

from __future__ import annotations

import io
import json
import re
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from . import state

_CRED_RE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_SERVICE_ALIASES = {"access-analyzer": "accessanalyzer", "monitoring": "cloudwatch", "email": "ses"}
_PROTOCOL_CACHE: dict[str, str | None] = {}
_ACCOUNT_CACHE: dict[str, str] = {}

DEFAULT_ACCOUNT = "123456789012"

STATUS = {
    "AccessDenied": 403,
    "AccessDeniedException": 403,
    "UnauthorizedOperation": 403,
    "InvalidClientTokenId": 403,
    "ExpiredToken": 400,
    "ExpiredTokenException": 400,
    "Throttling": 400,
    "ThrottlingException": 400,
    "TooManyRequestsException": 429,
    "LimitExceededException": 429,   # Security Hub's throttling (botocore: BatchImportFindings errors)
    "RequestLimitExceeded": 503,
    "SlowDown": 503,
    "ServiceUnavailable": 503,
    "ServiceUnavailableException": 503,
    "InternalError": 500,
    "InternalFailure": 500,
    "InternalServerException": 500,
    "NoSuchEntity": 404,
    "ReportInProgress": 404,
    "ReportExpired": 410,
    "ReportNotPresent": 410,
    "LimitExceeded": 409,
    "ResourceNotFoundException": 404,
}

_XMLNS = {
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
}

StartResponse = Callable[..., Any]


def normalise_service(name: str | None) -> str | None:
    if name is None:
        return None
    return _SERVICE_ALIASES.get(name, name)


def _protocol(service: str) -> str | None:
    if service not in _PROTOCOL_CACHE:
        try:
            from moto.core.utils import get_service_model

            _PROTOCOL_CACHE[service] = get_service_model(service).protocol
        except Exception:  # noqa: BLE001 - unknown service: no protocol
            _PROTOCOL_CACHE[service] = None
    return _PROTOCOL_CACHE[service]


def account_for_key(access_key: str | None) -> str:
    if not access_key:
        return DEFAULT_ACCOUNT
    acct = _ACCOUNT_CACHE.get(access_key)
    if acct is not None:
        return acct
    from moto.iam.models import get_account_id_from

    acct = get_account_id_from(access_key)
    if acct != DEFAULT_ACCOUNT:
        _ACCOUNT_CACHE[access_key] = acct
    return acct


@dataclass
class RequestInfo:
    service: str  # botocore service name (accessanalyzer, iam, s3, ...)
    scope_service: str  # signing name from the credential scope
    region: str
    access_key: str | None
    account_id: str
    action: str
    protocol: str | None
    params: dict[str, str] = field(default_factory=dict)


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _flat_qs(raw: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _rest_action(service: str, environ: dict[str, Any]) -> str | None:
    if service == "accessanalyzer":
        return _analyzer_action(environ)
    try:
        from moto.core.routing import get_service_router
        from werkzeug.wrappers import Request

        req = Request(environ)
        req.raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or req.path  # type: ignore[attr-defined]
        if req.raw_path.startswith(("http://", "https://")):  # type: ignore[attr-defined]
            from urllib.parse import urlsplit  # absolute-form target: the request came through a proxy

            parts = urlsplit(req.raw_path)  # type: ignore[attr-defined]
            req.raw_path = parts.path + (f"?{parts.query}" if parts.query else "")  # type: ignore[attr-defined]
        if "?" in req.raw_path:  # type: ignore[attr-defined]
            req.raw_path = req.raw_path.split("?", 1)[0]  # type: ignore[attr-defined]
        op, _ = get_service_router(service).match(req)
        return op.name
    except Exception:  # noqa: BLE001 - fall back to METHOD path
        return None


def _analyzer_action(environ: dict[str, Any]) -> str:
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "").rstrip("/")
    if path == "/analyzer":
        return {"GET": "ListAnalyzers", "PUT": "CreateAnalyzer"}.get(method, f"{method} {path}")
    if path.startswith("/analyzer/") and path.count("/") == 2:
        return {"GET": "GetAnalyzer", "DELETE": "DeleteAnalyzer"}.get(method, f"{method} {path}")
    return f"{method} {path}"


def identify(environ: dict[str, Any]) -> RequestInfo:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = _CRED_RE.search(auth)
    qs = environ.get("QUERY_STRING", "")
    if not m and "X-Amz-Credential" in qs:
        cred = _flat_qs(qs).get("X-Amz-Credential", "")
        m = _CRED_RE.search("Credential=" + unquote(cred))
    if m:
        access_key, region, scope_service = m.group(1), m.group(2), m.group(3)
    else:
        access_key, region, scope_service = None, "us-east-1", "unknown"
    service = normalise_service(scope_service) or "unknown"
    protocol = _protocol(service) if service != "unknown" else None
    params: dict[str, str] = {}
    action: str | None = None
    if protocol in ("query", "ec2"):
        params.update(_flat_qs(qs))
        ctype = environ.get("CONTENT_TYPE", "")
        if environ.get("REQUEST_METHOD") == "POST" and "x-www-form-urlencoded" in ctype:
            params.update(_flat_qs(_read_body(environ).decode("utf-8", "replace")))
        action = params.get("Action")
    elif protocol == "json":
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        action = target.rsplit(".", 1)[-1] if target else None
    elif protocol in ("rest-json", "rest-xml"):
        action = _rest_action(service, environ)
    if not action:
        action = f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"
    return RequestInfo(
        service=service,
        scope_service=scope_service,
        region=region,
        access_key=access_key,
        account_id=account_for_key(access_key),
        action=action,
        protocol=protocol,
        params=params,
    )


# ---------------------------------------------------------------------------- S3 encryption Deny

# S3 operations authorised as s3:PutObject.
_S3_PUT_ACTIONS = {"PutObject", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload", "CopyObject",
                   "CreateMultipartUpload"}


def _s3_bucket(environ: dict[str, Any]) -> str:
    host = (environ.get("HTTP_HOST") or "").split(":")[0]
    path = environ.get("PATH_INFO", "/").lstrip("/")
    if host and not host[0].isdigit() and "." in host and host.split(".")[0] in state.DENY_UNENCRYPTED_BUCKETS:
        return host.split(".")[0]  # virtual-hosted style
    return path.split("/", 1)[0]


def unencrypted_write(info: RequestInfo, environ: dict[str, Any]) -> str | None:
    """The bucket, if this is an s3:PutObject request without x-amz-server-side-encryption into a
    bucket whose policy denies that (UploadPart never carries the header: multipart writes fail)."""
    if info.service != "s3" or info.action not in _S3_PUT_ACTIONS:
        return None
    with state.LOCK:
        if not state.DENY_UNENCRYPTED_BUCKETS:
            return None
        bucket = _s3_bucket(environ)
        if bucket not in state.DENY_UNENCRYPTED_BUCKETS:
            return None
    return None if environ.get("HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION") else bucket


# ---------------------------------------------------------------------------- assumed-role sessions


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def session_policy_allows(document: str, action: str) -> bool:
    """Action-level evaluation of a session policy: an explicit Deny wins, else some Allow must match.
    (Resources and conditions are not evaluated: the pipeline's session policy uses Resource "*".)"""
    from fnmatch import fnmatchcase

    statements = _listed(json.loads(document).get("Statement", []))

    def matches(statement: dict[str, Any]) -> bool:
        return any(fnmatchcase(action.lower(), str(p).lower()) for p in _listed(statement.get("Action", [])))

    if any(s.get("Effect") == "Deny" and matches(s) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and matches(s) for s in statements)


def session_refusal(info: RequestInfo) -> tuple[str, str] | None:
    """(error code, message) when an assumed-role session's credentials have expired or its session
    policy does not allow the action: AWS grants the intersection of role and session policies."""
    with state.LOCK:
        session = state.SESSIONS.get(info.access_key or "")
    if session is None:
        return None
    policy, expiration = session
    from datetime import UTC, datetime

    if datetime.now(UTC).replace(tzinfo=None) >= expiration.replace(tzinfo=None):
        code = "ExpiredTokenException" if info.protocol in ("json", "rest-json") else "ExpiredToken"
        return code, "The security token included in the request is expired"
    if policy:
        from iam_audit.evaluate.policies import iam_action

        action = iam_action(info.service, info.action)
        if not session_policy_allows(policy, action):
            code = "AccessDeniedException" if info.protocol in ("json", "rest-json") else "AccessDenied"
            return code, (f"User: arn:aws:sts::{info.account_id}:assumed-role/... is not authorized to perform: "
                          f"{action} because no session policy allows the {action} action")
    return None


# ---------------------------------------------------------------------------- faults


def _rule_matches(rule: dict[str, Any], info: RequestInfo) -> bool:
    if rule.get("account_id") and str(rule["account_id"]) != info.account_id:
        return False
    svc = normalise_service(rule.get("service"))
    if svc and svc != info.service:
        return False
    if rule.get("action") and rule["action"] != info.action:
        return False
    region = rule.get("region")
    if region and info.region not in (region if isinstance(region, list) else [region]):
        return False
    target = rule.get("target_account_id")
    if target:
        role_arn = info.params.get("RoleArn", "")
        parts = role_arn.split(":")
        if len(parts) < 5 or parts[4] != str(target):
            return False
    return True


def _take(rule: dict[str, Any]) -> bool:
    """Consume one use of a rule; False if it is exhausted. Caller holds the lock."""
    times = rule.get("times")
    if times is None:
        return True
    if times <= 0:
        return False
    rule["times"] = times - 1
    return True


def find_fault(info: RequestInfo) -> dict[str, Any] | None:
    with state.LOCK:
        for rule in state.FAULTS:
            if rule.get("error") == "NeverReady":
                continue
            if _rule_matches(rule, info) and _take(rule):
                return rule
    return None


def never_ready_rule(info: RequestInfo) -> dict[str, Any] | None:
    if info.service != "iam" or info.action not in (
        "GenerateCredentialReport",
        "GetCredentialReport",
    ):
        return None
    with state.LOCK:
        for rule in state.FAULTS:
            if rule.get("error") != "NeverReady":
                continue
            # the rule names GenerateCredentialReport but governs GetCredentialReport too
            if not _rule_matches({**rule, "action": None}, info):
                continue
            times = rule.get("times")
            if times is not None and times <= 0:
                continue
            if info.action == "GetCredentialReport":
                _take(rule)
            return rule
    return None


def denied_code(info: RequestInfo) -> str:
    """The code each protocol answers an authorisation failure with."""
    if info.protocol == "ec2":
        return "UnauthorizedOperation"
    if info.protocol in ("json", "rest-json"):
        return "AccessDeniedException"
    return "AccessDenied"


def error_response(
    info: RequestInfo, code: str, message: str | None = None, status: int | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    if code == "SCPDenied":
        # a service control policy's explicit deny (e.g. a region-deny SCP), as the service reports it
        code = denied_code(info)
        message = message or (
            f"User: arn:aws:sts::{info.account_id}:assumed-role/audit/iam-audit is not authorized to perform: "
            f"{info.scope_service}:{info.action} in region {info.region} with an explicit deny in a service "
            "control policy")
    status = status or STATUS.get(code, 400)
    request_id = str(uuid.uuid4())
    if message is None:
        if code.startswith("AccessDenied") or code == "UnauthorizedOperation":
            message = (
                f"User: arn:aws:sts::{info.account_id}:assumed-role/OrganizationAccountAccessRole/"
                f"audit is not authorized to perform: {info.scope_service}:{info.action} "
                "because no identity-based policy allows the action"
            )
        elif "Throttl" in code or code in ("TooManyRequestsException", "SlowDown"):
            message = "Rate exceeded"
        else:
            message = f"{code} (injected by emulator)"
    proto = info.protocol
    headers: list[tuple[str, str]] = [("x-amzn-RequestId", request_id)]
    if proto == "ec2":
        body = (
            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>"
            f"<Message>{_esc(message)}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        headers.append(("Content-Type", "text/xml"))
    elif proto == "query":
        xmlns = _XMLNS.get(info.service, f"https://{info.service}.amazonaws.com/doc/")
        fault_type = "Sender" if status < 500 else "Receiver"
        body = (
            f"<ErrorResponse xmlns=\"{xmlns}\"><Error><Type>{fault_type}</Type><Code>{code}</Code>"
            f"<Message>{_esc(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        headers.append(("Content-Type", "text/xml"))
    elif proto == "json":
        body = json.dumps({"__type": code, "message": message})
        headers.append(("Content-Type", "application/x-amz-json-1.1"))
    elif proto == "rest-json":
        body = json.dumps({"message": message, "Message": message})
        headers += [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
    else:  # rest-xml (S3) and unknown
        body = (
            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>"
            f"<Message>{_esc(message)}</Message><RequestId>{request_id}</RequestId>"
            f"<HostId>emulator</HostId></Error>"
        )
        headers += [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    return status, headers, body.encode()


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _reply(
    start_response: StartResponse, status: int, headers: list[tuple[str, str]], body: bytes
) -> Iterable[bytes]:
    from http import HTTPStatus

    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    start_response(f"{status} {reason}", headers + [("Content-Length", str(len(body)))])
    return [body]


def _json_reply(start_response: StartResponse, obj: Any, status: int = 200) -> Iterable[bytes]:
    return _reply(
        start_response, status, [("Content-Type", "application/json")], json.dumps(obj).encode()
    )


# ---------------------------------------------------------------------------- policy enforcement


def _s3_target(environ: dict[str, Any]) -> tuple[str | None, str | None]:
    """(bucket, key) of an S3 request, path-style or virtual-hosted."""
    path = unquote(environ.get("PATH_INFO", "")).lstrip("/")
    host = (environ.get("HTTP_HOST") or "").rsplit(":", 1)[0]
    label, _, rest = host.partition(".")
    if rest in ("localhost", "127.0.0.1") or rest.startswith("s3."):
        return label, path or None
    bucket, _, key = path.partition("/")
    return bucket or None, key or None


def authorisation_request(info: RequestInfo, environ: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(IAM action, resource ARN, condition keys) that AWS would authorise this request as."""
    from iam_audit.evaluate.policies import iam_action

    action, resource, context = iam_action(info.service, info.action), "*", {}
    if info.service == "s3":
        bucket, key = _s3_target(environ)
        if bucket:
            resource = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key else "")
        if info.action in ("ListObjects", "ListObjectsV2"):
            qs = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
            for param, condition_key in (("prefix", "s3:prefix"), ("delimiter", "s3:delimiter"),
                                         ("max-keys", "s3:max-keys")):
                if param in qs:
                    context[condition_key] = qs[param][0]
        sse = environ.get("HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION")
        if sse and info.action in ("PutObject", "CreateMultipartUpload", "UploadPart", "CopyObject"):
            context["s3:x-amz-server-side-encryption"] = sse
        owner = bucket_owner(bucket) if bucket else None
        if owner:
            context["s3:ResourceAccount"] = owner
    elif info.service == "sts" and info.action == "AssumeRole":
        resource = info.params.get("RoleArn") or "*"
        parts = resource.split(":")
        org_id = organization_of(parts[4]) if len(parts) > 4 else None
        if org_id:
            context["aws:ResourceOrgID"] = org_id
    elif info.service == "securityhub" and info.action == "BatchImportFindings":
        # authorised on the product the findings are imported through (the Service Authorization
        # Reference's resource type "product")
        try:
            findings = json.loads(_read_body(environ) or b"{}").get("Findings") or []
        except ValueError:
            findings = []
        if findings and isinstance(findings[0], dict):
            resource = findings[0].get("ProductArn") or "*"
    return action, resource, context


def bucket_owner(bucket: str) -> str | None:
    """The account that owns an existing bucket (S3 buckets are global), else None."""
    from moto.s3.models import s3_backends

    entry = s3_backends.bucket_accounts.get(bucket)
    return entry[1] if entry else None


def organization_of(account_id: str) -> str | None:
    """The id of the organisation the account belongs to (management or member), else None."""
    from moto.organizations.models import organizations_backends

    for account_backends in list(organizations_backends.values()):
        for backend in list(account_backends.values()):
            org = getattr(backend, "org", None)
            if org is None:
                continue
            if account_id == org.master_account_id or any(a.id == account_id for a in backend.accounts):
                return org.id
    return None


def expected_owner_refusal(info: RequestInfo, environ: dict[str, Any]) -> str | None:
    """S3 answers 403 AccessDenied when ExpectedBucketOwner (x-amz-expected-bucket-owner) names another
    account than the bucket's owner."""
    if info.service != "s3":
        return None
    expected = environ.get("HTTP_X_AMZ_EXPECTED_BUCKET_OWNER")
    if not expected:
        return None
    bucket, _ = _s3_target(environ)
    owner = bucket_owner(bucket) if bucket else None
    if owner is None or owner == expected:
        return None
    return bucket


def principal_of(info: RequestInfo) -> str:
    """The role ARN of assumed-role credentials, else the access key id."""
    if not info.access_key:
        return "anonymous"
    try:
        from moto.iam.models import iam_backends

        key = iam_backends[info.account_id]["aws"].access_keys.get(info.access_key)
        role_arn = getattr(key, "role_arn", None)
    except Exception:  # noqa: BLE001 - unknown key: report the key
        role_arn = None
    return role_arn or f"access-key/{info.access_key}"


def enforced_policies(principal: str, info: RequestInfo) -> list[dict[str, Any]] | None:
    with state.LOCK:
        for rule in state.ENFORCED:
            if rule.get("access_key") and rule["access_key"] == info.access_key:
                return rule["policies"]
            if rule.get("role_name") and principal.startswith("arn:") and principal.endswith(
                    "/" + rule["role_name"]):
                return rule["policies"]
    return None


# ---------------------------------------------------------------------------- root control


def set_root(spec: dict[str, Any]) -> dict[str, Any]:
    """POST /_emulator/root: {"account_id", "mfa": none|virtual|hardware, "password": bool,
    "password_last_used_days_ago": N|null, "keys": [{"active", "created_days_ago",
    "last_used_days_ago", "region", "service"}]} -- omitted fields are left unchanged."""
    from datetime import timedelta

    now = state.utcnow()

    def ago(days: Any) -> Any:
        return None if days is None else now - timedelta(days=float(days))

    acct = str(spec.get("account_id") or DEFAULT_ACCOUNT)
    root = state.root_state(acct)
    with state.LOCK:
        if "mfa" in spec:
            root.mfa = spec["mfa"]
            root.mfa_enable_date = now
        if "password" in spec:
            root.password = bool(spec["password"])
        if "password_last_used_days_ago" in spec:
            root.password_last_used = ago(spec["password_last_used_days_ago"])
        if "keys" in spec:
            root.keys = [
                state.RootKey(
                    active=bool(k.get("active", True)),
                    create_date=ago(k.get("created_days_ago", 0)),
                    last_used=ago(k.get("last_used_days_ago")),
                    region=k.get("region"),
                    service=k.get("service"),
                )
                for k in spec["keys"]
            ]
    return {"account_id": acct, "mfa": root.mfa, "keys": len(root.keys)}


# ---------------------------------------------------------------------------- middleware


class EmulatorMiddleware:
    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator"):
            try:
                return self.control(environ, start_response, path)
            except Exception as exc:  # noqa: BLE001 - report to the client
                return _json_reply(
                    start_response,
                    {"error": repr(exc), "traceback": traceback.format_exc()},
                    500,
                )
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)

        info = identify(environ)
        state.count_call(info.account_id, info.service, info.action)
        if (environ.get("RAW_URI") or "").startswith(("http://", "https://")):
            with state.LOCK:
                state.PROXIED[info.service] += 1

        refusal = session_refusal(info)
        if refusal is not None:
            status, headers, body = error_response(info, refusal[0], refusal[1])
            return _reply(start_response, status, headers, body)

        foreign = expected_owner_refusal(info, environ)
        if foreign is not None:
            status, headers, body = error_response(info, "AccessDenied", "Access Denied", 403)
            if environ.get("REQUEST_METHOD") == "HEAD":
                body = b""
            return _reply(start_response, status, headers, body)

        bucket = unencrypted_write(info, environ)
        if bucket is not None:
            status, headers, body = error_response(
                info, "AccessDenied",
                f"User is not authorized to perform: s3:PutObject on arn:aws:s3:::{bucket} with an explicit deny "
                "(s3:x-amz-server-side-encryption is null)")
            return _reply(start_response, status, headers, body)

        nr = never_ready_rule(info)
        if nr is not None:
            return self.never_ready(info, start_response)

        rule = find_fault(info)
        if rule is not None:
            status, headers, body = error_response(
                info, rule["error"], rule.get("message"), rule.get("status")
            )
            return _reply(start_response, status, headers, body)

        principal = principal_of(info)
        action, resource, context = authorisation_request(info, environ)
        state.record_request((info.account_id, principal, action, resource, json.dumps(context, sort_keys=True)))
        policies = enforced_policies(principal, info)
        if policies is not None and action != "sts:GetCallerIdentity":  # AWS needs no permission for it
            from iam_audit.evaluate.policies import evaluate

            decision = evaluate(policies, action, resource, context)
            if not decision.allowed:
                with state.LOCK:
                    state.REFUSED.append({"account_id": info.account_id, "principal": principal, "action": action,
                                          "resource": resource, "context": context, "decision": decision.decision})
                why = ("an explicit deny in an identity-based policy" if decision.decision == "ExplicitDeny"
                       else "no identity-based policy allows the action")
                status, headers, body = error_response(
                    info, denied_code(info),
                    f"User: {principal} is not authorized to perform: {action} on resource: {resource} because {why}")
                if environ.get("REQUEST_METHOD") == "HEAD":
                    body = b""
                return _reply(start_response, status, headers, body)

        if info.service == "accessanalyzer":
            return self.access_analyzer(info, environ, start_response)
        from . import organization

        if organization.handles(info.service, info.action):
            return organization.serve(info, environ, start_response, error_response, _reply)
        if info.service == "securityhub" and info.action == "BatchImportFindings":
            return self.securityhub_import(info, environ, start_response)
        return self.app(environ, start_response)

    # -- Security Hub's BatchImportFindings with AWS's limits (emulator/securityhub.py)
    def securityhub_import(
        self, info: RequestInfo, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        from iam_audit_dev.emulator.securityhub import RequestRefused, batch_import_findings

        try:
            answer = batch_import_findings(info.account_id, info.region, _read_body(environ))
        except RequestRefused as exc:
            status, headers, body = error_response(info, exc.code, exc.message, exc.status)
            return _reply(start_response, status, headers, body)
        return _json_reply(start_response, answer)

    # -- NeverReady credential report
    def never_ready(self, info: RequestInfo, start_response: StartResponse) -> Iterable[bytes]:
        from moto.iam.models import iam_backends

        if info.action == "GenerateCredentialReport":
            # mark generated so that moto serves it once the rule is exhausted
            iam_backends[info.account_id]["global"].generate_report()
            rid = str(uuid.uuid4())
            body = (
                f"<GenerateCredentialReportResponse xmlns=\"{_XMLNS['iam']}\">"
                "<GenerateCredentialReportResult><State>STARTED</State>"
                "<Description>No report exists. Starting a new report generation task</Description>"
                "</GenerateCredentialReportResult><ResponseMetadata>"
                f"<RequestId>{rid}</RequestId></ResponseMetadata></GenerateCredentialReportResponse>"
            ).encode()
            return _reply(start_response, 200, [("Content-Type", "text/xml")], body)
        status, headers, body = error_response(
            info,
            "ReportInProgress",
            f"Report generation in progress. Please wait for report generation to complete. "
            f"Account {info.account_id}",
            404,
        )
        return _reply(start_response, status, headers, body)

    # -- Access Analyzer (rest-json)
    def access_analyzer(
        self, info: RequestInfo, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        qs = _flat_qs(environ.get("QUERY_STRING", ""))
        path = environ.get("PATH_INFO", "").rstrip("/")
        if info.action == "ListAnalyzers":
            items = state.list_analyzers(info.account_id, info.region, qs.get("type"))
            return _json_reply(start_response, {"analyzers": [a.to_json() for a in items]})
        if info.action == "CreateAnalyzer":
            body = json.loads(_read_body(environ) or b"{}")
            name = body.get("analyzerName") or "analyzer"
            if name in {a.name for a in state.list_analyzers(info.account_id, info.region)}:
                status, headers, payload = error_response(
                    info, "ConflictException", f"Analyzer {name} already exists", 409
                )
                return _reply(start_response, status, headers, payload)
            an = state.put_analyzer(info.account_id, info.region, name, body.get("type") or "ACCOUNT")
            return _json_reply(start_response, {"arn": an.arn})
        if info.action in ("GetAnalyzer", "DeleteAnalyzer"):
            name = unquote(path.rsplit("/", 1)[-1])
            with state.LOCK:
                bucket = state.ANALYZERS.get((info.account_id, info.region), {})
                an = bucket.get(name)
                if an is not None and info.action == "DeleteAnalyzer":
                    del bucket[name]
            if an is None:
                status, headers, payload = error_response(
                    info, "ResourceNotFoundException", f"Analyzer {name} not found", 404
                )
                return _reply(start_response, status, headers, payload)
            if info.action == "DeleteAnalyzer":
                return _json_reply(start_response, {})
            return _json_reply(start_response, {"analyzer": an.to_json()})
        status, headers, payload = error_response(
            info, "ValidationException", f"{info.action} is not supported by the emulator", 400
        )
        return _reply(start_response, status, headers, payload)

    # -- control plane
    def control(
        self, environ: dict[str, Any], start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        route = path[len("/_emulator") :].rstrip("/") or "/"

        def body() -> Any:
            raw = _read_body(environ)
            return json.loads(raw) if raw.strip() else {}

        if route == "/health":
            return _json_reply(start_response, {"ok": True})
        if route == "/faults":
            if method == "POST":
                rules = body().get("rules", [])
                state.set_faults(rules)
                return _json_reply(start_response, {"rules": state.FAULTS})
            if method == "DELETE":
                state.clear_faults()
                return _json_reply(start_response, {"rules": []})
            with state.LOCK:
                return _json_reply(start_response, {"rules": list(state.FAULTS)})
        if route == "/s3/deny-unencrypted":
            if method == "POST":
                with state.LOCK:
                    state.DENY_UNENCRYPTED_BUCKETS.update(body().get("buckets", []))
            elif method == "DELETE":
                with state.LOCK:
                    state.DENY_UNENCRYPTED_BUCKETS.clear()
            with state.LOCK:
                return _json_reply(start_response, {"buckets": sorted(state.DENY_UNENCRYPTED_BUCKETS)})
        if route == "/proxied":
            with state.LOCK:
                return _json_reply(start_response, {"requests": dict(state.PROXIED)})
        if route == "/calls":
            if method == "DELETE":
                state.reset_calls()
                return _json_reply(start_response, {"calls": []})
            return _json_reply(start_response, {"calls": state.calls_json()})
        if route == "/requests":
            return _json_reply(start_response, {"requests": state.requests_json()})
        if route == "/enforce":
            if method == "POST":
                state.set_enforced(body().get("principals", []))
            elif method == "DELETE":
                state.set_enforced([])
            with state.LOCK:
                return _json_reply(start_response, {"principals": len(state.ENFORCED),
                                                    "refused": list(state.REFUSED)})
        if route == "/seed" and method == "POST":
            from .seed import seed_organisation

            params = body()
            host = environ.get("HTTP_HOST") or "127.0.0.1"
            manifest = seed_organisation(
                endpoint_url=f"http://{host}",
                accounts=int(params.get("accounts", 5)),
                users=int(params.get("users", 8)),
                seed=int(params.get("seed", 42)),
            )
            return _json_reply(start_response, manifest)
        if route == "/manifest":
            with state.LOCK:
                return _json_reply(start_response, dict(state.MANIFEST))
        if route == "/root" and method == "GET":
            acct = _flat_qs(environ.get("QUERY_STRING", "")).get("account_id", DEFAULT_ACCOUNT)
            root = state.root_state(acct)
            return _json_reply(
                start_response,
                {
                    "account_id": acct,
                    "mfa": root.mfa,
                    "password_last_used": root.password_last_used
                    and root.password_last_used.isoformat(),
                    "keys": [
                        {
                            "active": k.active,
                            "create_date": k.create_date.isoformat(),
                            "last_used": k.last_used and k.last_used.isoformat(),
                        }
                        for k in root.keys
                    ],
                },
            )
        if route == "/root" and method == "POST":
            return _json_reply(start_response, set_root(body()))
        if route == "/aws-managed-policy-versions" and method == "POST":
            from .managed_versions import set_versions

            try:
                return _json_reply(start_response, set_versions(body()))
            except (KeyError, ValueError) as exc:
                return _json_reply(start_response, {"error": str(exc)}, 400)
        if route == "/issued-credentials":
            # Secrets handed out by STS, for tests proving they never persist anywhere.
            from moto.sts.models import sts_backends

            issued = []
            for account_id in list(sts_backends.keys()):
                for backend in list(sts_backends[account_id].values()):
                    for role in list(backend.assumed_roles):
                        issued.append({"access_key_id": role.access_key_id,
                                       "secret_access_key": role.secret_access_key,
                                       "session_token": role.session_token,
                                       "role_arn": role.role_arn,
                                       "external_id": role.external_id})
            return _json_reply(start_response, {"credentials": issued})
        if route == "/reset" and method == "POST":
            from .seed import reset_world

            reset_world()
            return _json_reply(start_response, {"ok": True})
        return _json_reply(start_response, {"error": f"no route {method} {path}"}, 404)
