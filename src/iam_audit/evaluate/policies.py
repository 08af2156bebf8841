"""The least-privilege IAM policies shipped in policies/, and an evaluator of them.

The evaluator decides one request the way AWS evaluates identity-based policies
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit Deny wins, else an Allow whose Action, Resource and Condition all match,
else the implicit deny. It covers the policy grammar the shipped policies use (Action,
NotAction, Resource, NotResource, Condition with the string, ARN, numeric, Bool and Null
operators, the IfExists suffix and the ForAnyValue/ForAllValues set qualifiers) and
raises on anything else rather than guessing. No maintained Python library on PyPI
evaluates a request context against policy documents offline (policyuniverse and
parliament parse and lint, iam-ape merges policies without request contexts,
principalmapper's simulator is unmaintained since 2022, the others call AWS's
simulator), so this small one is used by the policy tests and by the emulator,
which enforces the shipped policies for the pipeline's principals.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from iam_audit.paths import POLICIES_DIR

POLICY_DIR = POLICIES_DIR

# Emulator / botocore service names to IAM action prefixes.
ACTION_PREFIX = {"accessanalyzer": "access-analyzer"}

MUTATING_PREFIXES = ("Create", "Delete", "Update", "Put", "Attach", "Detach", "Add", "Remove", "Set", "Tag",
                     "Untag", "Upload", "Enable", "Disable", "Reset", "Change", "Invite", "Accept", "Decline",
                     "Leave", "Move", "Close", "Register", "Deregister")


# placeholders with a usual value: the commercial partition, and the audit role without a path
POLICY_DEFAULTS = {"Partition": "aws", "AuditRolePath": "/"}


def load_policy(name: str, **values: str) -> dict:
    text = (POLICY_DIR / name).read_text()
    for key, value in {**POLICY_DEFAULTS, **values}.items():
        text = text.replace("${" + key + "}", value)
    return json.loads(text)


# S3 API operations whose IAM action has another name
# (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html: "s3:ListBucket").
S3_ACTIONS = {"HeadBucket": "ListBucket", "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket",
              "HeadObject": "GetObject", "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject",
              "CompleteMultipartUpload": "PutObject", "AbortMultipartUpload": "AbortMultipartUpload"}


def iam_action(service: str, operation: str) -> str:
    if service == "s3":
        operation = S3_ACTIONS.get(operation, operation)
    return f"{ACTION_PREFIX.get(service, service)}:{operation}"


# ---- evaluation ------------------------------------------------------------------

class UnsupportedPolicy(ValueError):
    """The policy uses grammar this evaluator does not implement: refuse rather than guess."""


@lru_cache(maxsize=512)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UnsupportedPolicy(f"{value!r} is not a number") from None


def _string_op(base: str):
    """(match(policy_value, request_value), negated) of a string/ARN/Bool operator."""
    ops = {
        "StringEquals": (lambda p, v: p == v, False),
        "StringNotEquals": (lambda p, v: p == v, True),
        "StringEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), False),
        "StringNotEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), True),
        "StringLike": (lambda p, v: _like(p, v), False),
        "StringNotLike": (lambda p, v: _like(p, v), True),
        "ArnEquals": (lambda p, v: p == v, False),
        "ArnLike": (lambda p, v: _like(p, v), False),
        "ArnNotEquals": (lambda p, v: p == v, True),
        "ArnNotLike": (lambda p, v: _like(p, v), True),
        "Bool": (lambda p, v: str(p).lower() == str(v).lower(), False),
        # request value compared with the policy's (s3:TlsVersion, the bucket policy of deploy/)
        "NumericEquals": (lambda p, v: _number(v) == _number(p), False),
        "NumericNotEquals": (lambda p, v: _number(v) == _number(p), True),
        "NumericLessThan": (lambda p, v: _number(v) < _number(p), False),
        "NumericLessThanEquals": (lambda p, v: _number(v) <= _number(p), False),
        "NumericGreaterThan": (lambda p, v: _number(v) > _number(p), False),
        "NumericGreaterThanEquals": (lambda p, v: _number(v) >= _number(p), False),
    }
    if base not in ops:
        raise UnsupportedPolicy(f"condition operator {base!r} is not implemented by the evaluator")
    return ops[base]


def _condition_holds(operator: str, key: str, expected, context: dict) -> bool:
    values = {k.lower(): v for k, v in context.items()}
    present = key.lower() in values and values[key.lower()] is not None
    actual = _as_list(values[key.lower()]) if present else []
    expected = [str(e) for e in _as_list(expected)]
    qualifier, _, base = operator.rpartition(":")
    if base == "Null":
        want_absent = {e.lower() for e in expected}
        if len(want_absent) != 1:
            raise UnsupportedPolicy(f"Null condition on {key} must be true or false")
        return (not present) == (want_absent.pop() == "true")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    match, negated = _string_op(base)
    if not present:
        # A condition on a key missing from the request context is false, except for the
        # negated operators and ...IfExists; ForAllValues over an empty set is true.
        return if_exists or negated or qualifier == "ForAllValues"
    if qualifier == "ForAllValues":
        hits = [any(match(e, str(v)) for e in expected) for v in actual]
        return all(not h for h in hits) if negated else all(hits)
    if qualifier not in ("", "ForAnyValue"):
        raise UnsupportedPolicy(f"condition qualifier {qualifier!r} is not implemented")
    hit = any(match(e, str(v)) for v in actual for e in expected)
    return not hit if negated else hit


@dataclass(frozen=True)
class Decision:
    decision: str  # "Allow" | "ExplicitDeny" | "ImplicitDeny"
    statement: str | None = None  # Sid (or index) of the deciding statement

    @property
    def allowed(self) -> bool:
        return self.decision == "Allow"


def _statement_applies(statement: dict, action: str, resource: str, context: dict) -> bool:
    unknown = set(statement) - {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
    if unknown:
        raise UnsupportedPolicy(f"statement elements {sorted(unknown)} are not implemented (identity policies only)")
    if "Action" in statement:
        if not any(_like(p, action, ignore_case=True) for p in _as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(_like(p, action, ignore_case=True) for p in _as_list(statement["NotAction"])):
            return False
    else:
        raise UnsupportedPolicy("a statement needs Action or NotAction")
    if "Resource" in statement:
        if not any(_like(p, resource) for p in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(_like(p, resource) for p in _as_list(statement["NotResource"])):
            return False
    else:
        raise UnsupportedPolicy("a statement needs Resource or NotResource")
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            if not _condition_holds(operator, key, expected, context):
                return False
    return True


def evaluate(policies: list[dict], action: str, resource: str = "*", context: dict | None = None) -> Decision:
    """The decision of AWS's identity-policy evaluation for one request.

    `resource` is the request's resource ARN ("*" for actions without resource types),
    `context` its condition keys (a key absent or None is missing from the request).
    """
    context = context or {}
    allowed_by = None
    for policy in policies:
        for index, statement in enumerate(_as_list(policy["Statement"])):
            effect = statement.get("Effect")
            if effect not in ("Allow", "Deny"):
                raise UnsupportedPolicy(f"statement {index} has Effect {effect!r}")
            if not _statement_applies(statement, action, resource, context):
                continue
            sid = statement.get("Sid") or str(index)
            if effect == "Deny":
                return Decision("ExplicitDeny", sid)
            allowed_by = allowed_by or sid
    return Decision("Allow", allowed_by) if allowed_by else Decision("ImplicitDeny")


def allows(policies: list[dict], action: str, resource: str = "*", context: dict | None = None) -> bool:
    return evaluate(policies, action, resource, context).allowed


def is_mutating(action: str) -> bool:
    service, _, operation = action.partition(":")
    if action == "iam:GenerateCredentialReport":  # IAM classifies it as a read: it builds a report of reads
        return False
    return service in ("iam", "organizations") and operation.startswith(MUTATING_PREFIXES)
