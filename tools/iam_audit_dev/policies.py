"""`make policies`: write the audit role's permissions from the data-set registry.

src/iam_audit/policies/audit-role-permissions.json and the inline policy of
deploy/cloudformation/audit-role.yaml (between its two `make policies` marker lines) are both
iam_audit.ingest.datasets.audit_role_policy(); tests/unit/test_datasets.py fails while either differs.
"""

from __future__ import annotations

import json
import sys

from iam_audit.ingest.datasets import audit_role_policy
from iam_audit.paths import POLICIES_DIR
from iam_audit_dev import PROJECT_ROOT

POLICY_FILE = POLICIES_DIR / "audit-role-permissions.json"
TEMPLATE_FILE = PROJECT_ROOT / "deploy" / "cloudformation" / "audit-role.yaml"
BEGIN = "# BEGIN make policies: written from src/iam_audit/ingest/datasets.py, do not edit"
END = "# END make policies"


def policy_json() -> str:
    return json.dumps(audit_role_policy(), indent=2) + "\n"


def template_text(current: str) -> str:
    """The template with its inline policy statements replaced (indentation taken from the BEGIN line)."""
    lines = current.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == BEGIN)
        end = next(i for i, line in enumerate(lines) if line.strip() == END and i > start)
    except StopIteration:
        raise ValueError(f"{TEMPLATE_FILE} has no '{BEGIN}' ... '{END}' block") from None
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    block = []
    for statement in audit_role_policy()["Statement"]:
        block += [f"{indent}- Sid: {statement['Sid']}\n", f"{indent}  Effect: {statement['Effect']}\n",
                  f"{indent}  Action:\n"]
        block += [f"{indent}    - {action}\n" for action in statement["Action"]]
        block += [f'{indent}  Resource: "{statement["Resource"]}"\n']
    return "".join(lines[: start + 1] + block + lines[end:])


def main() -> int:
    POLICY_FILE.write_text(policy_json())
    TEMPLATE_FILE.write_text(template_text(TEMPLATE_FILE.read_text()))
    print(f"wrote {POLICY_FILE} and the inline policy of {TEMPLATE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
