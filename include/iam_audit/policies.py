"""The least-privilege IAM policies shipped in include/policies/, and a small evaluator for tests and audits."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

POLICY_DIR = Path(__file__).resolve().parents[1] / "policies"

# Emulator / botocore service names to IAM action prefixes.
ACTION_PREFIX = {"accessanalyzer": "access-analyzer"}

MUTATING_PREFIXES = ("Create", "Delete", "Update", "Put", "Attach", "Detach", "Add", "Remove", "Set", "Tag",
                     "Untag", "Upload", "Enable", "Disable", "Reset", "Change", "Invite", "Accept", "Decline",
                     "Leave", "Move", "Close", "Register", "Deregister")


def load_policy(name: str, **values: str) -> dict:
    text = (POLICY_DIR / name).read_text()
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    return json.loads(text)


# S3 API operations whose IAM action has another name.
S3_ACTIONS = {"HeadBucket": "ListBucket", "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket",
              "HeadObject": "GetObject"}


def iam_action(service: str, operation: str) -> str:
    if service == "s3":
        operation = S3_ACTIONS.get(operation, operation)
    return f"{ACTION_PREFIX.get(service, service)}:{operation}"


def allows(policies: list[dict], action: str) -> bool:
    """Whether any Allow statement's Action pattern matches (resources and conditions not evaluated)."""
    for policy in policies:
        statements = policy["Statement"]
        for statement in statements if isinstance(statements, list) else [statements]:
            if statement.get("Effect") != "Allow":
                continue
            patterns = statement.get("Action", [])
            for pattern in patterns if isinstance(patterns, list) else [patterns]:
                if fnmatch.fnmatchcase(action.lower(), pattern.lower()):
                    return True
    return False


def is_mutating(action: str) -> bool:
    service, _, operation = action.partition(":")
    if action == "iam:GenerateCredentialReport":  # IAM classifies it as a read: it builds a report of reads
        return False
    return service in ("iam", "organizations") and operation.startswith(MUTATING_PREFIXES)
