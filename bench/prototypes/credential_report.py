"""PROTOTYPE (bench only) of extract.get_credential_report with one call fewer per account.

Shipped: GenerateCredentialReport until it says COMPLETE, then GetCredentialReport: a fresh report
costs Generate (STARTED) + Generate (COMPLETE) + Get = 3 calls. Here the polling is done with
GetCredentialReport itself (it answers ReportInProgress while the report is being generated), so
a fresh report costs Generate + Get = 2 calls, and each extra poll still costs one call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from botocore.exceptions import ClientError
from iam_audit.aws import error_code
from iam_audit.extract import DatasetUnavailable


def get_credential_report(iam, poll_budget_seconds: float = 120.0, sleep: Callable = time.sleep) -> dict:
    deadline = time.monotonic() + poll_budget_seconds
    state = iam.generate_credential_report().get("State")
    delay = 0.0 if state == "COMPLETE" else 1.0
    while True:
        if delay:
            sleep(delay)
        try:
            response = iam.get_credential_report()
            break
        except ClientError as exc:
            code = error_code(exc)
            if code not in ("ReportInProgress", "ReportNotPresent"):
                if code == "ReportExpired":
                    raise DatasetUnavailable(code, f"GetCredentialReport: {exc}") from None
                raise
            delay = min(max(delay * 2, 1.0), 10.0)
            if time.monotonic() + delay > deadline:
                raise DatasetUnavailable("CredentialReportNotReady",
                                         f"the credential report was still {code} after "
                                         f"{poll_budget_seconds:.0f} s of polling") from None
    content = response["Content"]
    return {
        "GeneratedTime": response.get("GeneratedTime"),
        "ReportFormat": response.get("ReportFormat", "text/csv"),
        "Content": content.decode("utf-8") if isinstance(content, bytes) else content,
    }


def paginate_large_pages(original):
    """PROTOTYPE of extract._paginate asking IAM for its largest page (MaxItems 1000) instead of the
    default 100: ListVirtualMFADevices, ListServerCertificates and GetAccountAuthorizationDetails then
    take one call per 1,000 items instead of one per 100."""

    def _paginate(client, operation: str, result_keys: tuple[str, ...], **kwargs) -> dict:
        if client.meta.service_model.service_name == "iam":
            kwargs.setdefault("PaginationConfig", {"PageSize": 1000})
        return original(client, operation, result_keys, **kwargs)

    return _paginate
