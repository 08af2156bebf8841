"""A fast AWS stand-in for benchmarks: canned responses recorded from the emulator, replayed per account.

The moto emulator answers about 30 requests/s on two cores, so a benchmark of many accounts
against it measures moto. This stand-in records, once, what the emulator answers for one
template account (the raw HTTP status, headers and body of every call the extraction makes),
then serves those bytes for any number of accounts from an ASGI app under uvicorn, with the
template's account id replaced by the id of the account that signed the request.

    python -m iam_audit_dev.standin --port 5100 --snapshot FILE --accounts 1000
    python -m iam_audit_dev.standin --record-from http://127.0.0.1:5000 \
        --template-account 111122223333 --snapshot FILE        # record only

or from Python: `record(emulator_url, template_account_id)` and `start_standin(snapshot, accounts=N)`
(`.url`, `.calls()`, `.reset_calls()`, `.manifest`, `.set_accounts(n)`, `.stop()`).

Wire format: the same as the emulator's, byte for byte apart from the account id, the request's
credentials and the fields listed below, for IAM, STS and EC2 (query/XML), Organizations (json),
Account and Access Analyzer (rest-json). S3 (rest-xml) is a small in-memory store: CreateBucket,
HeadBucket, PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects, ListObjectsV2.

Call counting: `GET /_emulator/calls` answers `{"calls": [{"account_id", "service", "action",
"count"}]}` and `DELETE /_emulator/calls` resets, as the emulator's endpoint does (one count per
HTTP request, retries included; service is the botocore name). `GET /_emulator/manifest` lists the
organisation, `POST /_emulator/seed {"accounts": N}` resizes it, `GET /_emulator/health` answers ok.

How it differs from the emulator and from AWS (benchmarks only; never for a test of a check):
- canned data: every account has the template account's users, policies, keys, MFA devices,
  analyzers and contacts; only the account id differs (ARNs, the credential report's rows);
- fixed clock: timestamps (CreateDate, PasswordLastUsed, the credential report's GeneratedTime and
  dates) are those of the recording, whatever the day; only AssumeRole's Expiration is now + duration;
- no policy enforcement (session policies, ExternalId, SCPs, the S3 encryption deny) and no faults
  (no throttling, no AccessDenied, no 5xx): every recorded call succeeds, or fails, as it did once;
- requests are matched on service, action and the parameters that select a page or a subject
  (IAM `Marker` and `UserName`, Access Analyzer's region); other parameters (IAM `MaxItems`,
  filters) are ignored, so a call the recording did not make in that form gets the recorded answer.
  A call never recorded answers HTTP 400 `StandInNotRecorded`, which botocore does not retry;
- the credential report is STARTED on an account's first GenerateCredentialReport, then COMPLETE,
  as in the emulator (real AWS takes seconds to build it);
- Organizations ListAccounts: management account (the recording's) plus N-1 generated members
  (ids 2000000000nn...), 20 a page; no other Organizations call;
- credentials are not checked: an access key issued by AssumeRole carries its account id
  (`ASIA` + 12 digits + `SDIN`); any other key acts in the management account.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from bisect import bisect_left, insort
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from iam_audit_dev.emulator.process import LocalService, free_port

ACCOUNT = "{{STANDIN_ACCOUNT_ID}}"
_CRED_RE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_ASSUMED_KEY = re.compile(r"^ASIA(\d{12})SDIN$")
# Headers that say something about one response rather than the answer.
_VOLATILE_HEADERS = {"date", "server", "content-length", "connection", "transfer-encoding", "x-amzn-requestid",
                     "x-amz-request-id", "x-amz-id-2", "keep-alive", "content-md5", "status"}
ORG_PAGE_SIZE = 20
MEMBER_ID_BASE = 200000000000
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
# 2: the emulator's GetAccountAuthorizationDetails lists AWS-managed policies only where the account
# uses them (format 1 recordings hold all ~1,580 of them, 6 MB); an older recording is refused.
SNAPSHOT_FORMAT = 2
RECORDER_KEY, RECORDER_SECRET = "AKIASTANDINRECORDER1", "stand-in-recorder-secret"


def request_key(service: str, action: str, params: dict[str, str], region: str) -> str:
    """What selects a recorded answer: the action and the parameters that choose a page or a subject."""
    if service == "iam":
        return "|".join((service, action, params.get("UserName", ""), params.get("Marker", "")))
    if service == "accessanalyzer":
        return "|".join((service, action, region, params.get("nextToken", "")))
    return f"{service}|{action}"


# ---- recording -------------------------------------------------------------------------------

class _Capture:
    """Keeps the raw HTTP answer of the last call made through the clients it is attached to."""

    def __init__(self):
        self.last: dict | None = None

    def attach(self, client):
        client.meta.events.register("before-parse", self._on_parse)
        return client

    def _on_parse(self, response_dict, **_):
        headers = [[k.lower(), v] for k, v in response_dict["headers"].items()
                   if k.lower() not in _VOLATILE_HEADERS]
        self.last = {"status": response_dict["status_code"], "headers": headers,
                     "body": response_dict["body"].decode("utf-8")}


def record(emulator_url: str, template_account: str, region: str = "us-east-1") -> dict:
    """Make every call of an account's extraction against the emulator and keep the raw answers.

    Returns the snapshot (JSON-serialisable): answers keyed by request_key, the template account id
    replaced by a placeholder, the credential report's CSV and the shape of an Organizations account.
    """
    import boto3
    from botocore.exceptions import ClientError

    base = boto3.Session(aws_access_key_id=RECORDER_KEY, aws_secret_access_key=RECORDER_SECRET,
                         region_name=region)
    cap = _Capture()
    answers: dict[str, dict] = {}

    def client(session, service, region_name=region):
        return cap.attach(session.client(service, region_name=region_name, endpoint_url=emulator_url))

    def keep(key, call):
        try:
            result = call()
        except ClientError as exc:
            result = exc.response
        answers[key] = cap.last
        return result

    sts = client(base, "sts")
    caller = keep("sts|GetCallerIdentity", sts.get_caller_identity)
    management = caller["Account"]
    creds = keep("sts|AssumeRole", lambda: sts.assume_role(
        RoleArn=f"arn:aws:iam::{template_account}:role/OrganizationAccountAccessRole",
        RoleSessionName="iam-audit", DurationSeconds=3600))["Credentials"]
    assumed = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"], region_name=region)
    org = client(base, "organizations").list_accounts()["Accounts"]
    member = next(a for a in org if a["Id"] == template_account)

    iam = client(assumed, "iam")
    first = keep("iam|GenerateCredentialReport||", iam.generate_credential_report)
    answers["iam|GenerateCredentialReport|STARTED"] = answers.pop("iam|GenerateCredentialReport||")
    if first.get("State") != "COMPLETE":
        for _ in range(50):
            if keep("iam|GenerateCredentialReport||", iam.generate_credential_report).get("State") == "COMPLETE":
                break
            time.sleep(0.2)
    report = keep("iam|GetCredentialReport||", iam.get_credential_report)

    def pages(action, call, **kwargs):
        marker = ""
        while True:
            page = keep(f"iam|{action}||{marker}", lambda m=marker: call(**kwargs, **({"Marker": m} if m else {})))
            if not page.get("IsTruncated"):
                return
            marker = page["Marker"]

    pages("GetAccountAuthorizationDetails", iam.get_account_authorization_details, MaxItems=1000)
    pages("ListVirtualMFADevices", iam.list_virtual_mfa_devices, AssignmentStatus="Any", MaxItems=1000)
    pages("ListServerCertificates", iam.list_server_certificates, MaxItems=1000)
    keep("iam|GetAccountPasswordPolicy||", iam.get_account_password_policy)
    keep("iam|GetAccountSummary||", iam.get_account_summary)
    keep("iam|ListSAMLProviders||", iam.list_saml_providers)
    keep("iam|ListOpenIDConnectProviders||", iam.list_open_id_connect_providers)
    for user in iam.list_users(MaxItems=1000)["Users"]:
        keep(f"iam|ListAccessKeys|{user['UserName']}|",
             lambda u=user["UserName"]: iam.list_access_keys(UserName=u, MaxItems=1000))
    keep("iam|ListEntitiesForPolicy||", lambda: iam.list_entities_for_policy(
        PolicyArn="arn:aws:iam::aws:policy/AWSSupportAccess", MaxItems=1000))
    regions = keep("ec2|DescribeRegions", lambda: client(assumed, "ec2").describe_regions(AllRegions=False))
    for r in regions["Regions"]:
        keep(f"accessanalyzer|ListAnalyzers|{r['RegionName']}|",
             client(assumed, "accessanalyzer", r["RegionName"]).list_analyzers)
    keep("account|GetAlternateContact",
         lambda: client(assumed, "account").get_alternate_contact(AlternateContactType="SECURITY"))

    content = report["Content"].decode("utf-8")
    report_answer = answers["iam|GetCredentialReport||"]
    report_answer["body"] = report_answer["body"].replace(base64.b64encode(content.encode()).decode(), "{{CONTENT}}")
    if "{{CONTENT}}" not in report_answer["body"]:
        raise RuntimeError("the recorded GetCredentialReport answer does not carry its Content as one base64 string")
    for name, value in (("ACCESS_KEY_ID", creds["AccessKeyId"]), ("SECRET_ACCESS_KEY", creds["SecretAccessKey"]),
                        ("SESSION_TOKEN", creds["SessionToken"])):
        answers["sts|AssumeRole"]["body"] = answers["sts|AssumeRole"]["body"].replace(value, "{{" + name + "}}")
    answers["sts|AssumeRole"]["body"] = re.sub(r"<Expiration>[^<]*</Expiration>", "<Expiration>{{EXPIRATION}}"
                                               "</Expiration>", answers["sts|AssumeRole"]["body"])
    answers["sts|GetCallerIdentity"]["body"] = answers["sts|GetCallerIdentity"]["body"].replace(management, ACCOUNT)

    def templated(text: str) -> str:
        return text.replace(template_account, ACCOUNT)

    for key, answer in answers.items():
        if answer is None:
            raise RuntimeError(f"no HTTP answer was captured for {key}")
        answer["body"] = templated(answer["body"])
    org_member = {k: (v.timestamp() if isinstance(v, datetime) else v) for k, v in member.items()}
    return {
        "format": SNAPSHOT_FORMAT,
        "recorded_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "recorded_from": emulator_url,
        "template_account_id": template_account,
        "management_account_id": management,
        "credential_report_csv": templated(content),
        "organizations_account": json.loads(templated(json.dumps(org_member))),
        "answers": answers,
    }


def record_fresh(path: str | os.PathLike, users: int = 50, seed: int = 42, log_path: str | None = None) -> dict:
    """Start an emulator, seed the management account and one member with `users` users, record the
    member into `path` (JSON), stop the emulator; returns the snapshot."""
    from iam_audit_dev.emulator.process import start_emulator

    with start_emulator(log_path=log_path) as emulator:
        manifest = emulator.seed(accounts=1, users=users, seed=seed)
        member = next(a["id"] for a in manifest["accounts"] if a["id"] != manifest["management_account_id"])
        snapshot = record(emulator.url, member)
    snapshot["users"] = users
    Path(path).write_text(json.dumps(snapshot))
    return snapshot


# ---- serving ---------------------------------------------------------------------------------

def _member_ids(management: str, accounts: int) -> list[str]:
    ids = [management]
    i = 0
    while len(ids) < accounts:
        candidate = f"{MEMBER_ID_BASE + i:012d}"
        if candidate != management:
            ids.append(candidate)
        i += 1
    return ids


class _Template:
    """A text split at the account placeholder, so filling it in is one join."""

    __slots__ = ("parts",)

    def __init__(self, text: str):
        self.parts = [p.encode("utf-8") for p in text.split(ACCOUNT)]

    def fill(self, account: str) -> bytes:
        return account.encode().join(self.parts) if len(self.parts) > 1 else self.parts[0]


class StandInApp:
    """The ASGI app. All state lives in this one process; uvicorn runs it on one event loop."""

    def __init__(self, snapshot: dict, accounts: int = 1):
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"stand-in snapshot format {snapshot.get('format')!r}, expected {SNAPSHOT_FORMAT}")
        self.snapshot = snapshot
        self.management = snapshot["management_account_id"]
        self.answers = {k: (a["status"], [(h.encode(), v.encode()) for h, v in a["headers"]], _Template(a["body"]))
                        for k, a in snapshot["answers"].items()}
        self.report_csv = _Template(snapshot["credential_report_csv"])
        self.calls: Counter = Counter()
        self.reports_generated: set[str] = set()
        self.objects: dict[str, dict[str, tuple[bytes, str, str, str]]] = {}
        self.sorted_keys: dict[str, list[str]] = {}
        self.set_accounts(accounts)

    def set_accounts(self, accounts: int) -> dict:
        self.account_ids = _member_ids(self.management, max(accounts, 1))
        self.account_set = set(self.account_ids)
        return self.manifest()

    def manifest(self) -> dict:
        return {"management_account_id": self.management, "stand_in": True,
                "template_account_id": self.snapshot["template_account_id"],
                "recorded_at": self.snapshot["recorded_at"],
                "accounts": [{"id": i, "name": "management" if i == self.management else f"member-{n:05d}"}
                             for n, i in enumerate(self.account_ids)]}

    # -- ASGI entry point
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, headers, payload = self.handle(scope["method"], scope["path"], scope["query_string"].decode(),
                                               dict(scope["headers"]), body)
        headers = [*headers, (b"content-length", str(len(payload)).encode()),
                   (b"x-amzn-requestid", b"00000000-0000-0000-0000-000000000000")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload if scope["method"] != "HEAD" else b""})

    def handle(self, method: str, path: str, query: str, headers: dict[bytes, bytes], body: bytes):
        if path.startswith("/_emulator"):
            return self.control(method, path, body)
        m = _CRED_RE.search(headers.get(b"authorization", b"").decode())
        access_key, region, service = (m.group(1), m.group(2), m.group(3)) if m else (None, "us-east-1", "unknown")
        service = "accessanalyzer" if service == "access-analyzer" else service
        assumed = _ASSUMED_KEY.match(access_key or "")
        account = assumed.group(1) if assumed else self.management
        if service == "s3":
            action, answer = self.s3(method, path, query, headers, body)
        elif service in ("iam", "sts", "ec2"):
            params = {k: v[0] for k, v in parse_qs(body.decode() or query, keep_blank_values=True).items()}
            action = params.get("Action", "unknown")
            answer = self.query(service, action, params, account)
        elif service == "organizations":
            action = headers.get(b"x-amz-target", b".").decode().rsplit(".", 1)[-1]
            answer = self.organizations(action, json.loads(body or b"{}"))
        elif service == "account":
            action = path.strip("/")[:1].upper() + path.strip("/")[1:]
            answer = self.replay(request_key(service, action, {}, region), account)
        elif service == "accessanalyzer":
            action = {"/analyzer": "ListAnalyzers"}.get(path.rstrip("/"), f"{method} {path}")
            answer = self.replay(request_key(service, action, {k: v[0] for k, v in parse_qs(query).items()},
                                             region), account)
        else:
            action, answer = f"{method} {path}", None
        self.calls[(account, service, action)] += 1
        return answer or self.not_recorded(service, action)

    def not_recorded(self, service: str, action: str):
        message = f"the stand-in has no recorded answer for {service}:{action} in this form"
        if service in ("organizations", "account", "accessanalyzer"):
            return 400, [(b"content-type", b"application/json"), (b"x-amzn-errortype", b"StandInNotRecorded")], \
                json.dumps({"__type": "StandInNotRecorded", "message": message}).encode()
        return 400, [(b"content-type", b"text/xml")], (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>StandInNotRecorded</Code><Message>{escape(message)}"
            "</Message></Error><RequestId>0</RequestId></ErrorResponse>").encode()

    def replay(self, key: str, account: str, **fields: str):
        answer = self.answers.get(key)
        if answer is None:
            return None
        status, headers, template = answer
        payload = template.fill(account)
        for name, value in fields.items():
            payload = payload.replace(b"{{" + name.encode() + b"}}", value.encode())
        return status, headers, payload

    def query(self, service: str, action: str, params: dict[str, str], account: str):
        if service == "sts" and action == "AssumeRole":
            target = params.get("RoleArn", "").split(":")
            target_account = target[4] if len(target) > 4 else ""
            if target_account not in self.account_set:
                return 403, [(b"content-type", b"text/xml")], (
                    "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>"
                    f"account {escape(target_account)} is not in the stand-in's organisation</Message></Error>"
                    "</ErrorResponse>").encode()
            expiry = datetime.now(UTC) + timedelta(seconds=int(params.get("DurationSeconds") or 3600))
            return self.replay("sts|AssumeRole", target_account,
                               ACCESS_KEY_ID=f"ASIA{target_account}SDIN",
                               SECRET_ACCESS_KEY=hashlib.sha1(target_account.encode()).hexdigest(),
                               SESSION_TOKEN=f"standin-session-{target_account}",
                               EXPIRATION=expiry.strftime("%Y-%m-%dT%H:%M:%SZ"))
        if service == "iam" and action == "GenerateCredentialReport":
            if account in self.reports_generated:
                return self.replay("iam|GenerateCredentialReport||", account)
            self.reports_generated.add(account)
            return self.replay("iam|GenerateCredentialReport|STARTED", account)
        if service == "iam" and action == "GetCredentialReport":
            content = base64.b64encode(self.report_csv.fill(account)).decode()
            return self.replay("iam|GetCredentialReport||", account, CONTENT=content)
        return self.replay(request_key(service, action, params, ""), account)

    def organizations(self, action: str, body: dict):
        if action != "ListAccounts":
            return None
        start = int(body.get("NextToken") or 0)
        size = min(int(body.get("MaxResults") or ORG_PAGE_SIZE), ORG_PAGE_SIZE)
        shape = self.snapshot["organizations_account"]
        accounts = []
        for n, account_id in enumerate(self.account_ids[start:start + size], start):
            name = "management" if account_id == self.management else f"member-{n:05d}"
            entry = json.loads(json.dumps(shape).replace(ACCOUNT, account_id))
            entry.update(Name=name, Email=f"{name}@example.com")
            accounts.append(entry)
        page: dict[str, Any] = {"Accounts": accounts}
        if start + size < len(self.account_ids):
            page["NextToken"] = str(start + size)
        return 200, [(b"content-type", b"application/x-amz-json-1.1")], json.dumps(page).encode()

    # -- S3, in memory
    def s3(self, method: str, path: str, query: str, headers: dict[bytes, bytes], body: bytes):
        bucket, _, key = path.lstrip("/").partition("/")
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        objects = self.objects.get(bucket)
        if not key:
            if method == "PUT":
                self.objects.setdefault(bucket, {})
                self.sorted_keys.setdefault(bucket, [])
                return "CreateBucket", (200, [(b"location", f"/{bucket}".encode())], b"")
            if objects is None:
                return f"{method} bucket", _s3_error(404, "NoSuchBucket", bucket)
            if method == "HEAD":
                return "HeadBucket", (200, [], b"")
            if method == "GET" and params.get("list-type") == "2":
                return "ListObjectsV2", self.list_objects_v2(bucket, params)
            if method == "POST" and "delete" in params:
                return "DeleteObjects", self.delete_objects(bucket, body)
            return f"{method} bucket", None
        if objects is None:
            return f"{method} object", _s3_error(404, "NoSuchBucket", bucket)
        if method == "PUT":
            if b"x-amz-copy-source" in headers:
                return "CopyObject", None
            etag = f'"{hashlib.md5(body).hexdigest()}"'  # noqa: S324 - S3's ETag of a single-part object
            content_type = headers.get(b"content-type", b"binary/octet-stream").decode()
            if key not in objects:
                insort(self.sorted_keys[bucket], key)
            objects[key] = (body, content_type, etag, formatdate(usegmt=True))
            sse = headers.get(b"x-amz-server-side-encryption")
            return "PutObject", (200, [(b"etag", etag.encode())] + ([(b"x-amz-server-side-encryption", sse)]
                                                                    if sse else []), b"")
        if method in ("GET", "HEAD"):
            action = "GetObject" if method == "GET" else "HeadObject"
            if key not in objects:
                return action, _s3_error(404, "NoSuchKey", key)
            data, content_type, etag, modified = objects[key]
            return action, (200, [(b"content-type", content_type.encode()), (b"etag", etag.encode()),
                                  (b"last-modified", modified.encode()), (b"accept-ranges", b"bytes")], data)
        if method == "DELETE":
            if objects.pop(key, None) is not None:
                self.sorted_keys[bucket].remove(key)
            return "DeleteObject", (204, [], b"")
        return f"{method} object", None

    def list_objects_v2(self, bucket: str, params: dict[str, str]):
        prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
        max_keys = int(params.get("max-keys") or 1000)
        keys = self.sorted_keys[bucket]
        after = params.get("continuation-token") or params.get("start-after") or ""
        i = bisect_left(keys, max(prefix, after))
        if i < len(keys) and keys[i] == after:
            i += 1
        contents, prefixes, last = [], [], None
        while i < len(keys) and keys[i].startswith(prefix) and len(contents) + len(prefixes) < max_keys:
            key = keys[i]
            if delimiter and delimiter in key[len(prefix):]:
                common = key[:len(prefix) + key[len(prefix):].index(delimiter) + len(delimiter)]
                prefixes.append(common)
                while i < len(keys) and keys[i].startswith(common):
                    i += 1
                last = common
                continue
            contents.append(key)
            last = key
            i += 1
        truncated = i < len(keys) and keys[i].startswith(prefix)
        objects = self.objects[bucket]
        parts = [f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{S3_NS}">',
                 f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>",
                 f"<MaxKeys>{max_keys}</MaxKeys><KeyCount>{len(contents) + len(prefixes)}</KeyCount>",
                 f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
        if delimiter:
            parts.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        if truncated:
            parts.append(f"<NextContinuationToken>{escape(last or '')}</NextContinuationToken>")
        for key in contents:
            data, _, etag, modified = objects[key]
            stamp = datetime.strptime(modified, "%a, %d %b %Y %H:%M:%S GMT").strftime("%Y-%m-%dT%H:%M:%S.000Z")
            parts.append(f"<Contents><Key>{escape(key)}</Key><LastModified>{stamp}</LastModified>"
                         f"<ETag>{escape(etag)}</ETag><Size>{len(data)}</Size><StorageClass>STANDARD</StorageClass>"
                         "</Contents>")
        parts += [f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes]
        parts.append("</ListBucketResult>")
        return 200, [(b"content-type", b"application/xml")], "".join(parts).encode()

    def delete_objects(self, bucket: str, body: bytes):
        deleted = []
        for element in ElementTree.fromstring(body).iter():
            if element.tag.rsplit("}", 1)[-1] == "Key" and element.text:
                if self.objects[bucket].pop(element.text, None) is not None:
                    self.sorted_keys[bucket].remove(element.text)
                deleted.append(element.text)
        payload = "".join(f"<Deleted><Key>{escape(k)}</Key></Deleted>" for k in deleted)
        return 200, [(b"content-type", b"application/xml")], (
            f'<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="{S3_NS}">{payload}</DeleteResult>').encode()

    # -- control endpoints, as the emulator's
    def control(self, method: str, path: str, body: bytes):
        route = path[len("/_emulator"):]
        if route == "/health":
            answer: Any = {"ok": True, "stand_in": True}
        elif route == "/calls" and method == "DELETE":
            self.calls.clear()
            answer = {"calls": []}
        elif route == "/calls":
            answer = {"calls": [{"account_id": a, "service": s, "action": act, "count": n}
                                for (a, s, act), n in sorted(self.calls.items())]}
        elif route == "/manifest":
            answer = self.manifest()
        elif route == "/seed" and method == "POST":
            spec = json.loads(body or b"{}")
            self.objects.clear()
            self.sorted_keys.clear()
            self.reports_generated.clear()
            self.calls.clear()
            answer = self.set_accounts(int(spec.get("accounts", 0)) + 1)  # as the emulator: N members + management
        else:
            return 404, [(b"content-type", b"application/json")], b'{"error": "unknown control endpoint"}'
        return 200, [(b"content-type", b"application/json")], json.dumps(answer).encode()


def _s3_error(status: int, code: str, resource: str):
    return status, [(b"content-type", b"application/xml")], (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{code}</Message>'
        f"<Resource>{escape(resource)}</Resource><RequestId>0</RequestId></Error>").encode()


# ---- process ---------------------------------------------------------------------------------

class StandIn(LocalService):
    def __init__(self, proc: subprocess.Popen, url: str, log_path: str):
        super().__init__(proc, url, log_path)
        self.manifest = self._request("GET", "/_emulator/manifest")

    def set_accounts(self, accounts: int) -> dict:
        """N accounts in all (management included); forgets S3 objects and call counts."""
        self.manifest = self._request("POST", "/_emulator/seed", {"accounts": accounts - 1})
        return self.manifest


def start_standin(snapshot_path: str | os.PathLike, accounts: int = 1, port: int | None = None,
                  host: str = "127.0.0.1", log_path: str | None = None, ready_timeout: float = 30) -> StandIn:
    """Serve a recorded snapshot in a child process (its CPU is not the caller's)."""
    port = port or free_port()
    log_path = log_path or os.path.join(tempfile.mkdtemp(prefix="iam-audit-standin-"), "standin.log")
    env = dict(os.environ)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "iam_audit_dev.standin", "--host", host, "--port", str(port),
                                 "--snapshot", str(snapshot_path), "--accounts", str(accounts)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stand-in exited with {proc.returncode}: {Path(log_path).read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/_emulator/health", timeout=1):  # noqa: S310 - local URL
                return StandIn(proc, url, log_path)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"stand-in not ready after {ready_timeout}s; log: {log_path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5100)
    parser.add_argument("--snapshot", required=True, help="snapshot JSON file (read, or written by --record-from)")
    parser.add_argument("--accounts", type=int, default=1, help="accounts in the organisation, management included")
    parser.add_argument("--record-from", help="emulator URL: record the template account into --snapshot and exit")
    parser.add_argument("--template-account", help="with --record-from: the account id to record")
    args = parser.parse_args(argv)
    if args.record_from:
        snapshot = record(args.record_from, args.template_account)
        Path(args.snapshot).write_text(json.dumps(snapshot))
        return
    import uvicorn

    app = StandInApp(json.loads(Path(args.snapshot).read_text()), args.accounts)
    # botocore keeps connections in a pool; uvicorn's 5 s idle timeout would close most of them between calls
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="on",
                timeout_keep_alive=60)


if __name__ == "__main__":
    main()
