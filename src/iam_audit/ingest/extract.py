"""Get: read one account's IAM state through its assumed role.

Account-wide calls only (credential report, GetAccountAuthorizationDetails, one
call per listing), plus ListAccessKeys for users the credential report shows
with keys, and ListAnalyzers per enabled region. Each data set is collected on
its own: a failure (access denied, unsupported API, throttled past retries) is
recorded for that data set and the others still come back.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from iam_audit.aws import DEFAULT_REGION, AwsTarget, dataset_remedy, error_code, is_permanent
from iam_audit.ingest.datasets import BY_NAME, NAMES
from iam_audit.ingest.transform import is_default_version

log = logging.getLogger(__name__)

# the data sets of an account, in the registry's order (iam_audit.ingest.datasets)
DATASETS = NAMES

SUPPORT_POLICY_ARN = "arn:aws:iam::aws:policy/AWSSupportAccess"


class DatasetUnavailable(Exception):
    """A data set could not be collected; code is AWS's error code or ours."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class DatasetResult:
    name: str
    status: str  # 'ok' | 'error'
    payload: object = None
    error_code: str | None = None
    error_message: str | None = None
    calls: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _paginate(client, operation: str, result_keys: tuple[str, ...], each_page: Callable[[dict], None] | None = None,
              **kwargs) -> dict:
    if client.meta.service_model.service_name == "iam":
        kwargs.setdefault("PaginationConfig", {"PageSize": 1000})  # IAM's largest page; its default is 100
    merged: dict[str, list] = {key: [] for key in result_keys}
    for page in client.get_paginator(operation).paginate(**kwargs):
        for key in result_keys:
            # a page without a documented list is a drifted response, not an empty one
            if not isinstance(page.get(key), list):
                raise DatasetUnavailable("MalformedResponse", f"{operation}: a response page has no {key} list")
        if each_page is not None:
            each_page(page)  # before the next page is read: what it drops is never held for the whole set
        for key in result_keys:
            merged[key].extend(page[key])
    return merged


# ---- one function per data set -------------------------------------------------

def get_credential_report(iam, poll_budget_seconds: float = 120.0, sleep: Callable = time.sleep) -> dict:
    """Generate (or reuse AWS's cached) credential report, then poll GetCredentialReport until it is ready.

    Polling with Get rather than Generate costs 2 calls for a fresh report instead of 3. Within the
    one budget: ReportExpired / ReportNotPresent from Get mean generate again, and LimitExceeded from
    Generate (too many generations in progress; botocore does not retry it) means wait and generate again.
    """
    deadline = time.monotonic() + poll_budget_seconds
    delay, generate = 0.0, True
    while True:
        if delay:
            sleep(delay)
        try:
            if generate:
                generate = False
                if iam.generate_credential_report().get("State") != "COMPLETE":
                    delay = 1.0
                    continue
            response = iam.get_credential_report()
            break
        except ClientError as exc:
            code = error_code(exc)
            if code in ("LimitExceeded", "ReportExpired", "ReportNotPresent"):
                generate = True
            elif code != "ReportInProgress":
                raise
            delay = min(max(delay * 2, 1.0), 10.0)
            if time.monotonic() + delay > deadline:
                raise DatasetUnavailable(
                    "CredentialReportNotReady",
                    f"the credential report was still not ready ({code}) after {poll_budget_seconds:.0f} s "
                    "of polling",
                ) from None
    content = response["Content"]
    return {
        "GeneratedTime": response.get("GeneratedTime"),
        "ReportFormat": response.get("ReportFormat", "text/csv"),
        "Content": content.decode("utf-8") if isinstance(content, bytes) else content,
    }


def users_with_access_keys(credential_report: dict) -> list[str]:
    rows = csv.DictReader(io.StringIO(credential_report["Content"]))
    return [
        row["user"]
        for row in rows
        if row["user"] != "<root_account>"
        and (row.get("access_key_1_last_rotated", "N/A") != "N/A"
             or row.get("access_key_2_last_rotated", "N/A") != "N/A")
    ]


def get_access_keys(iam, user_names: list[str]) -> dict:
    keys = []
    for user_name in user_names:
        try:
            keys += _paginate(iam, "list_access_keys", ("AccessKeyMetadata",), UserName=user_name)[
                "AccessKeyMetadata"
            ]
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":  # user deleted since the report
                raise
    return {"AccessKeyMetadata": keys}


def _aws_managed_default_versions_only(page: dict) -> None:
    """Drop the documents of the versions of AWS-managed policies that are not their default.

    AWS lists every version of each AWS-managed policy the account uses: ReadOnlyAccess alone has
    about 190, some 9 MB of JSON. Only the default version is in force and only its document is
    stored (transform.authorization_details); the other versions keep their id and dates, so the
    raw data still shows the history. Customer-managed policies keep all their versions (at most five)."""
    for policy in page.get("Policies") or []:
        if not isinstance(policy, dict) or str(policy.get("Arn", "")).split(":")[4:5] != ["aws"]:
            continue
        for version in policy.get("PolicyVersionList") or []:
            if not isinstance(version, dict):
                continue
            if not is_default_version(policy, version):
                version.pop("Document", None)


def get_authorization_details(iam) -> dict:
    return _paginate(
        iam,
        "get_account_authorization_details",
        ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies"),
        each_page=_aws_managed_default_versions_only,
    )


def get_password_policy(iam) -> dict:
    try:
        return {"PasswordPolicy": iam.get_account_password_policy()["PasswordPolicy"]}
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return {"PasswordPolicy": None}  # the account has no password policy at all
        raise


def get_account_summary(iam) -> dict:
    return {"SummaryMap": iam.get_account_summary()["SummaryMap"]}


# Fields of a virtual MFA device that are kept: never the seed or QR code, which
# some implementations return and which would let anyone generate codes.
MFA_DEVICE_FIELDS = ("SerialNumber", "User", "EnableDate")


def get_virtual_mfa_devices(iam) -> dict:
    devices = _paginate(iam, "list_virtual_mfa_devices", ("VirtualMFADevices",), AssignmentStatus="Any")
    return {"VirtualMFADevices": [
        {k: d[k] for k in MFA_DEVICE_FIELDS if k in d} for d in devices["VirtualMFADevices"]
    ]}


def get_server_certificates(iam) -> dict:
    return _paginate(iam, "list_server_certificates", ("ServerCertificateMetadataList",))


def get_identity_providers(iam) -> dict:
    return {
        "SAMLProviderList": iam.list_saml_providers().get("SAMLProviderList", []),
        "OpenIDConnectProviderList": iam.list_open_id_connect_providers().get("OpenIDConnectProviderList", []),
    }


def get_alternate_contacts(account) -> dict:
    try:
        contact = account.get_alternate_contact(AlternateContactType="SECURITY")["AlternateContact"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            contact = None  # no security contact registered
        else:
            raise
    return {"SECURITY": contact}


def get_regions(ec2, fallback_ec2=None) -> dict:
    """DescribeRegions in the connection's region, else in us-east-1 (a region-deny SCP may refuse the first)."""
    try:
        return {"Regions": ec2.describe_regions(AllRegions=False)["Regions"],
                "DescribedIn": ec2.meta.region_name}
    except ClientError as exc:
        if fallback_ec2 is None or not is_permanent(error_code(exc)):
            raise
        log.warning("DescribeRegions refused in %s (%s): asking %s", ec2.meta.region_name, error_code(exc),
                    fallback_ec2.meta.region_name)
        return {"Regions": fallback_ec2.describe_regions(AllRegions=False)["Regions"],
                "DescribedIn": fallback_ec2.meta.region_name}


def get_access_analyzers(make_client: Callable[[str], object], regions: list[str], workers: int = 8) -> dict:
    """ListAnalyzers in every enabled region, kept per region.

    A region that refuses the call for good (a region-deny SCP answers AccessDeniedException) is
    recorded with its reason in RegionErrors and the other regions still count; a transient
    failure (throttling past retries, 5xx, network) fails the data set so that the task retries.
    """
    def one(region):
        try:
            return region, _paginate(make_client(region), "list_analyzers", ("analyzers",))["analyzers"], None
        except ClientError as exc:
            return region, None, (error_code(exc), str(exc))
        except BotoCoreError as exc:
            return region, None, (type(exc).__name__, str(exc))

    with ThreadPoolExecutor(max_workers=min(workers, max(1, len(regions)))) as pool:
        results = list(pool.map(one, regions))
    transient = {region: err for region, _, err in results if err and not is_permanent(err[0])}
    if transient:
        raise DatasetUnavailable(
            "AccessAnalyzerUnavailable",
            f"ListAnalyzers failed in {len(transient)} of {len(regions)} regions: "
            + "; ".join(f"{r}: {code}: {msg}" for r, (code, msg) in sorted(transient.items())[:5]),
        )
    return {
        "AnalyzersByRegion": {region: analyzers for region, analyzers, err in results if not err},
        "RegionErrors": {region: {"Code": err[0], "Message": err[1]} for region, _, err in results if err},
    }


# ---- orchestration ---------------------------------------------------------------

def _collect(name: str, fn: Callable[[], object]) -> DatasetResult:
    try:
        return DatasetResult(name, "ok", fn())
    except DatasetUnavailable as exc:
        return DatasetResult(name, "error", error_code=exc.code, error_message=str(exc))
    except ClientError as exc:
        code = error_code(exc)
        message = f"{exc}. Fix: {dataset_remedy(code)}" if is_permanent(code) else str(exc)
        return DatasetResult(name, "error", error_code=code, error_message=message)
    except BotoCoreError as exc:
        return DatasetResult(name, "error", error_code=type(exc).__name__, error_message=str(exc))


@dataclass
class Clients:
    """The clients of one account's session that the collectors use."""
    iam: object
    account: object
    ec2: object
    ec2_fallback: object | None                  # DescribeRegions in us-east-1 when the home region refuses
    access_analyzer: Callable[[str], object]     # region -> client
    poll_budget_seconds: float = 120.0


def _enabled_regions_of(payload: dict) -> list[str]:
    return sorted(
        r["RegionName"]
        for r in payload["Regions"]
        if r.get("OptInStatus") in (None, "opt-in-not-required", "opted-in")
    )


# How each data set of the registry is collected: (clients, payloads of the data sets it is
# collected after) -> its payload. Raises DatasetUnavailable, ClientError or BotoCoreError.
COLLECTORS: dict[str, Callable[[Clients, dict], object]] = {
    "credential_report": lambda c, _: get_credential_report(c.iam, c.poll_budget_seconds),
    "authorization_details": lambda c, _: get_authorization_details(c.iam),
    "password_policy": lambda c, _: get_password_policy(c.iam),
    "account_summary": lambda c, _: get_account_summary(c.iam),
    "virtual_mfa_devices": lambda c, _: get_virtual_mfa_devices(c.iam),
    "access_keys": lambda c, after: get_access_keys(c.iam, users_with_access_keys(after["credential_report"])),
    "server_certificates": lambda c, _: get_server_certificates(c.iam),
    "regions": lambda c, _: get_regions(c.ec2, c.ec2_fallback),
    "access_analyzers": lambda c, after: get_access_analyzers(c.access_analyzer,
                                                              _enabled_regions_of(after["regions"])),
    "alternate_contacts": lambda c, _: get_alternate_contacts(c.account),
    "identity_providers": lambda c, _: get_identity_providers(c.iam),
}
if set(COLLECTORS) != set(NAMES):
    raise RuntimeError(f"collectors and the data-set registry differ: {sorted(set(COLLECTORS) ^ set(NAMES))}")


def extract_account_datasets(target: AwsTarget, session, poll_budget_seconds: float = 120.0,
                             workers: int = 6) -> dict[str, DatasetResult]:
    """Collect every data set of the account that `session` acts in.

    Each data set is collected in a worker of its own, except that one collected after another
    (the registry's `after`) follows it in the same worker, and is recorded with the registry's
    `unavailable` error when that one could not be collected.
    """
    clients = Clients(
        iam=target.client("iam", session=session),
        account=target.client("account", session=session),
        ec2=target.client("ec2", session=session),
        ec2_fallback=(target.client("ec2", region_name=DEFAULT_REGION, session=session)
                      if target.region_name != DEFAULT_REGION else None),
        access_analyzer=lambda region: target.client("accessanalyzer", region_name=region, session=session),
        poll_budget_seconds=poll_budget_seconds,
    )
    followers = {name: [d for d in NAMES if name in BY_NAME[d].after] for name in NAMES}

    def chain(first: str) -> list[DatasetResult]:
        head = _collect(first, lambda: COLLECTORS[first](clients, {}))
        results = [head]
        for name in followers[first]:
            if head.ok:
                results.append(_collect(name, lambda name=name: COLLECTORS[name](clients, {first: head.payload})))
            else:
                code, message = BY_NAME[name].unavailable
                results.append(DatasetResult(name, "error", error_code=code, error_message=message))
        return results

    # the chains first: they take longest (report polling, one ListAnalyzers per region)
    firsts = sorted((name for name in NAMES if not BY_NAME[name].after), key=lambda name: not followers[name])
    results: dict[str, DatasetResult] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(chain, name) for name in firsts]:
            for result in future.result():
                results[result.name] = result
    return {name: results[name] for name in DATASETS}


def unreachable_account(code: str, message: str) -> dict[str, DatasetResult]:
    """Every data set in error, for an account whose role could not be assumed."""
    return {name: DatasetResult(name, "error", error_code=code, error_message=message) for name in DATASETS}


def now_utc() -> datetime:
    return datetime.now(UTC)
