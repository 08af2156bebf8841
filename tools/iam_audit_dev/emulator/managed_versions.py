"""AWS-managed policies with their real version history.

moto knows one version of each AWS-managed policy (the current document, e.g. ReadOnlyAccess at v190,
95 kB). GetAccountAuthorizationDetails in AWS lists every version of each AWS-managed policy the
account uses, so an account holding ReadOnlyAccess and SecurityAudit answers with hundreds of policy
documents. `set_versions` gives one account's copy of such a policy `count` versions ending at its
default: older versions carry a growing prefix of each statement's actions (the shape of a policy that
gained actions release after release), the default keeps moto's document, so verdicts are unchanged.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

from . import patches, state


def _older_document(default: dict[str, Any], fraction: float) -> dict[str, Any]:
    doc = copy.deepcopy(default)
    for statement in doc.get("Statement", []):
        actions = statement.get("Action")
        if isinstance(actions, list) and len(actions) > 1:
            statement["Action"] = actions[: max(1, int(len(actions) * fraction))]
    return doc


def set_versions(spec: dict[str, Any]) -> dict[str, Any]:
    """POST /_emulator/aws-managed-policy-versions: {"account_id", "policy_arn", "count": N}.

    N = 1 restores the single default version. Answers the version count and the bytes of all
    documents (as JSON) the account's GetAccountAuthorizationDetails now carries for the policy."""
    from moto.iam.models import PolicyVersion, iam_backends

    account_id = str(spec["account_id"])
    arn = str(spec["policy_arn"])
    count = int(spec.get("count", 1))
    backend = iam_backends[account_id]["global"]
    if arn.split(":")[4] != "aws" or arn not in backend.managed_policies:
        raise ValueError(f"{arn} is not an AWS-managed policy known to the emulator")
    with state.LOCK:
        patches._privatise(backend, arn)  # copy-on-write: other accounts keep the shared single version
        policy = backend.managed_policies[arn]
        default = next(v for v in policy.versions if v.is_default)
        last = int(policy.default_version_id.lstrip("v"))
        if not 1 <= count <= last:
            raise ValueError(f"count must be between 1 and {last} (the default version's number)")
        document = json.loads(default.document)
        older = []
        for number in range(last - count + 1, last):
            fraction = number / last
            older.append(PolicyVersion(arn, json.dumps(_older_document(document, fraction)), False, f"v{number}",
                                       default.create_date - timedelta(days=7 * (last - number))))
        policy.versions = [*older, default]
        size = sum(len(v.document) for v in policy.versions)
    return {"policy_arn": arn, "versions": len(policy.versions), "document_bytes": size}
