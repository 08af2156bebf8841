"""Emulator-side state that moto does not model: root user, Access Analyzer, faults, call counts.

Everything here lives in the server process and is guarded by one lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LOCK = threading.RLock()


def utcnow() -> datetime:
    """Naive UTC, like moto's own timestamps."""
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None)


@dataclass
class RootKey:
    active: bool
    create_date: datetime
    last_used: datetime | None = None
    region: str | None = None
    service: str | None = None


@dataclass
class RootState:
    # "none" | "virtual" | "hardware"
    mfa: str = "none"
    mfa_enable_date: datetime | None = None
    password_last_used: datetime | None = None
    created: datetime = field(default_factory=utcnow)
    keys: list[RootKey] = field(default_factory=list)
    # False: root credentials removed (centralized root access in AWS Organizations);
    # the credential report then says password_enabled false instead of not_supported
    password: bool = True


@dataclass
class Analyzer:
    account_id: str
    region: str
    name: str
    type: str = "ACCOUNT"
    status: str = "ACTIVE"
    created_at: datetime = field(default_factory=utcnow)

    @property
    def arn(self) -> str:
        return f"arn:aws:access-analyzer:{self.region}:{self.account_id}:analyzer/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "createdAt": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tags": {},
        }


ROOT: dict[str, RootState] = {}
# (account_id, region) -> {name: Analyzer}
ANALYZERS: dict[tuple[str, str], dict[str, Analyzer]] = {}
FAULTS: list[dict[str, Any]] = []
# (account_id, service, action) -> count
CALLS: Counter[tuple[str, str, str]] = Counter()
# last seed manifest
MANIFEST: dict[str, Any] = {}
# identity policies enforced per principal: [{"access_key"?, "role_name"?, "policies": [...]}]
ENFORCED: list[dict[str, Any]] = []
# distinct authorisation requests seen: (account_id, principal, iam action, resource, context json)
REQUESTS: set[tuple[str, str, str, str, str]] = set()
# authorisation requests refused by ENFORCED policies, same shape plus the decision
REFUSED: list[dict[str, Any]] = []

# Buckets where s3:PutObject without the x-amz-server-side-encryption header is denied, as the
# shipped s3-raw-writer.json (or the classic bucket policy) does. UploadPart and
# CompleteMultipartUpload are authorised as s3:PutObject and cannot carry that header.
DENY_UNENCRYPTED_BUCKETS: set[str] = set()
# Assumed-role sessions by access key id: (session policy document or None, expiration as naive UTC).
SESSIONS: dict[str, tuple[str | None, datetime]] = {}
# Requests that reached the emulator through an HTTP proxy (absolute-form request target).
PROXIED: Counter[str] = Counter()


def root_state(account_id: str) -> RootState:
    with LOCK:
        st = ROOT.get(account_id)
        if st is None:
            st = ROOT[account_id] = RootState()
        return st


def put_analyzer(account_id: str, region: str, name: str, type_: str = "ACCOUNT",
                 created_at: datetime | None = None) -> Analyzer:
    with LOCK:
        an = Analyzer(account_id, region, name, type_, "ACTIVE", created_at or utcnow())
        ANALYZERS.setdefault((account_id, region), {})[name] = an
        return an


def list_analyzers(account_id: str, region: str, type_: str | None = None) -> list[Analyzer]:
    with LOCK:
        items = list(ANALYZERS.get((account_id, region), {}).values())
    if type_:
        items = [a for a in items if a.type == type_]
    return items


def set_faults(rules: list[dict[str, Any]]) -> None:
    with LOCK:
        FAULTS.clear()
        for r in rules:
            rule = dict(r)
            rule.setdefault("account_id", None)
            rule.setdefault("service", None)
            rule.setdefault("action", None)
            rule.setdefault("error", "AccessDenied")
            rule.setdefault("times", None)
            rule.setdefault("target_account_id", None)
            rule.setdefault("region", None)
            FAULTS.append(rule)


def clear_faults() -> None:
    with LOCK:
        FAULTS.clear()


def count_call(account_id: str, service: str, action: str) -> None:
    with LOCK:
        CALLS[(account_id, service, action)] += 1


def calls_json() -> list[dict[str, Any]]:
    with LOCK:
        return [
            {"account_id": a, "service": s, "action": act, "count": n}
            for (a, s, act), n in sorted(CALLS.items())
        ]


def reset_calls() -> None:
    with LOCK:
        CALLS.clear()
        REQUESTS.clear()


def set_enforced(rules: list[dict[str, Any]]) -> None:
    with LOCK:
        ENFORCED[:] = [dict(r) for r in rules]
        REFUSED.clear()


def record_request(entry: tuple[str, str, str, str, str]) -> None:
    with LOCK:
        REQUESTS.add(entry)


def requests_json() -> list[dict[str, Any]]:
    import json

    with LOCK:
        return [{"account_id": a, "principal": p, "action": act, "resource": r, "context": json.loads(c)}
                for a, p, act, r, c in sorted(REQUESTS)]


def reset_all() -> None:
    with LOCK:
        ENFORCED.clear()
        REQUESTS.clear()
        REFUSED.clear()
        ROOT.clear()
        ANALYZERS.clear()
        FAULTS.clear()
        CALLS.clear()
        MANIFEST.clear()
        DENY_UNENCRYPTED_BUCKETS.clear()
        PROXIED.clear()
        SESSIONS.clear()
