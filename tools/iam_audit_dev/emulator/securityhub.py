"""Security Hub's BatchImportFindings as AWS answers it, where moto accepts anything.

moto 5.2.5 stores whatever it is given: any number of findings per request, any AwsAccountId and
ProductArn, any size, whether or not Security Hub is enabled. AWS (the API reference of
BatchImportFindings and botocore's service model):
- 1 to 100 findings per request (the model's min/max on Findings): more is InvalidInputException;
- the calling account must have Security Hub enabled in the region, else InvalidAccessException
  ("Account ... is not subscribed to AWS Security Hub");
- with the default product ARN, arn:<partition>:securityhub:<region>:<account>:product/<account>/default,
  each finding's AwsAccountId must be the calling account and its ProductArn that ARN;
- a finding may be at most 240 KB;
- a finding that breaks a rule is listed in FailedFindings (Id, ErrorCode, ErrorMessage) while the
  others of the request are imported.
Throttling (TooManyRequestsException, HTTP 429) comes from the emulator's fault rules.
"""

from __future__ import annotations

import json
from typing import Any

MAX_FINDINGS = 100
MAX_FINDING_BYTES = 240 * 1024


class RequestRefused(Exception):
    def __init__(self, code: str, message: str, status: int):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def default_product_arn(region: str, account_id: str, partition: str = "aws") -> str:
    return f"arn:{partition}:securityhub:{region}:{account_id}:product/{account_id}/default"


def finding_refusal(finding: dict[str, Any], region: str, account_id: str) -> str | None:
    """Why AWS refuses one finding of the request, or None."""
    if finding.get("AwsAccountId") != account_id:
        return (f"AwsAccountId {finding.get('AwsAccountId')!r} is not the calling account {account_id}: with the "
                "default product a finding may only be imported by its own account")
    product = finding.get("ProductArn", "")
    if not product.endswith(f":securityhub:{region}:{account_id}:product/{account_id}/default"):
        return f"ProductArn {product!r} is not the default product of account {account_id} in {region}"
    if not finding.get("Resources"):
        return "Finding must contain at least one resource in the Resources array"
    size = len(json.dumps(finding, separators=(",", ":")).encode())
    if size > MAX_FINDING_BYTES:
        return f"Finding size {size} bytes exceeds the maximum of {MAX_FINDING_BYTES} bytes"
    return None


def batch_import_findings(account_id: str, region: str, body: bytes) -> dict[str, Any]:
    """Validate as AWS does, import the acceptable findings into moto's backend, answer the response."""
    from moto.securityhub.models import securityhub_backends

    try:
        findings = json.loads(body or b"{}").get("Findings")
    except ValueError:
        raise RequestRefused("InvalidInputException", "The request body is not valid JSON", 400) from None
    if not isinstance(findings, list) or not 1 <= len(findings) <= MAX_FINDINGS:
        count = len(findings) if isinstance(findings, list) else 0
        raise RequestRefused("InvalidInputException",
                             f"Findings must contain between 1 and {MAX_FINDINGS} findings, got {count}", 400)
    backend = securityhub_backends[account_id][region]
    if not backend.enabled:
        raise RequestRefused("InvalidAccessException",
                             f"Account {account_id} is not subscribed to AWS Security Hub in {region}", 401)
    failed, accepted = [], []
    for finding in findings:
        why = finding_refusal(finding, region, account_id)
        if why:
            failed.append({"Id": finding.get("Id", ""), "ErrorCode": "InvalidInput", "ErrorMessage": why})
        else:
            accepted.append(finding)
    if accepted:
        backend.batch_import_findings(accepted)
    return {"FailedCount": len(failed), "SuccessCount": len(accepted), "FailedFindings": failed}
