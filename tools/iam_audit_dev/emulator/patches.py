"""In-process patches that make moto's IAM look like real AWS for a CIS audit.

Applied once by :func:`apply` in the server process (idempotent).
"""

from __future__ import annotations

import copy
import csv
import io
import random
import string
import threading
from datetime import datetime, timedelta
from typing import Any

from moto.core.responses import ActionResult
from moto.iam import models as iam_models
from moto.iam import responses as iam_responses
from moto.iam.exceptions import ReportNotPresentException

from . import state

DATE_FMT = "%Y-%m-%dT%H:%M:%S+00:00"
REPORT_HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
)

_APPLIED = False


def _fmt(ts: datetime | None, default: str = "N/A") -> str:
    if ts is None:
        return default
    return ts.strftime(DATE_FMT)


def _key_cols(key: Any) -> list[str]:
    """Columns active,last_rotated,last_used_date,region,service for one user key (or None)."""
    if key is None:
        return ["false", "N/A", "N/A", "N/A", "N/A"]
    lu = key.last_used
    if lu is None:
        used = ["N/A", "N/A", "N/A"]
    else:
        ts = lu.timestamp if hasattr(lu, "timestamp") and not callable(lu.timestamp) else lu
        used = [
            _fmt(ts),
            getattr(lu, "region", None) or "N/A",
            getattr(lu, "service", None) or "N/A",
        ]
    return ["true" if key.status == "Active" else "false", _fmt(key.create_date), *used]


def _root_key_cols(key: state.RootKey | None) -> list[str]:
    if key is None:
        return ["false", "N/A", "N/A", "N/A", "N/A"]
    if key.last_used is None:
        used = ["N/A", "N/A", "N/A"]
    else:
        used = [_fmt(key.last_used), key.region or "us-east-1", key.service or "s3"]
    return ["true" if key.active else "false", _fmt(key.create_date), *used]


def root_row(account_id: str) -> str:
    root = state.root_state(account_id)
    keys = list(root.keys) + [None, None]
    fields = [
        "<root_account>",
        f"arn:aws:iam::{account_id}:root",
        _fmt(root.created),
        "not_supported" if root.password else "false",
        _fmt(root.password_last_used, "no_information") if root.password else "N/A",
        "not_supported",
        "not_supported",
        "true" if root.mfa in ("virtual", "hardware") else "false",
        *_root_key_cols(keys[0]),
        *_root_key_cols(keys[1]),
        "false",
        "N/A",
        "false",
        "N/A",
    ]
    return ",".join(fields)


def user_row(backend: Any, user: Any) -> str:
    policy = backend.account_password_policy
    if user.password:
        pw_enabled = "true"
        pw_last_used = _fmt(user.password_last_used, "no_information")
        changed = getattr(user, "password_last_changed", None) or user.create_date
        pw_changed = _fmt(changed)
        if policy is not None and policy.max_password_age:
            pw_next = _fmt(changed + timedelta(days=int(policy.max_password_age)))
        else:
            pw_next = "N/A"
    else:
        pw_enabled, pw_last_used, pw_changed, pw_next = "false", "N/A", "N/A", "N/A"
    keys = list(user.access_keys) + [None, None]
    certs = list(user.signing_certificates.values()) + [None, None]

    def cert_cols(c: Any) -> list[str]:
        if c is None:
            return ["false", "N/A"]
        return ["true" if c.status == "Active" else "false", _fmt(c.upload_date)]

    fields = [
        user.name,
        user.arn,
        _fmt(user.create_date),
        pw_enabled,
        pw_last_used,
        pw_changed,
        pw_next,
        "true" if user.mfa_devices else "false",
        *_key_cols(keys[0]),
        *_key_cols(keys[1]),
        *cert_cols(certs[0]),
        *cert_cols(certs[1]),
    ]
    # CSV as RFC 4180 writes it: a user name (and so its ARN) may hold a comma, which IAM allows
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def credential_report(backend: Any) -> str:
    lines = [REPORT_HEADER, root_row(backend.account_id)]
    for user in list(backend.users.values()):
        lines.append(user_row(backend, user))
    return "\n".join(lines) + "\n"


class RootUserView:
    """What ListVirtualMFADevices shows as the User of the root MFA device."""

    def __init__(self, account_id: str, root: state.RootState):
        self.arn = f"arn:aws:iam::{account_id}:root"
        self.user_id = account_id
        self.create_date = root.created
        self.password_last_used = root.password_last_used


class RootVirtualMfaDevice:
    def __init__(self, account_id: str, root: state.RootState):
        self.serial_number = f"arn:aws:iam::{account_id}:mfa/root-account-mfa-device"
        self.enable_date = root.mfa_enable_date or root.created
        self.user = RootUserView(account_id, root)


def _cert_meta(cert: Any) -> dict[str, Any]:
    return {
        "ServerCertificateName": cert.cert_name,
        "Path": cert.path,
        "Arn": cert.arn,
        "UploadDate": cert.upload_date,
        "ServerCertificateId": cert.certificate_id,
        "Expiration": cert.expiration,
    }


# ---------------------------------------------------------------- scale patches
_SHARED_LOCK = threading.Lock()
# partition -> (list of shared AWS-managed policy objects, {arn: index})
_SHARED_AWS_POLICIES: dict[str, tuple[list[Any], dict[str, int]]] = {}


def _shared_aws_policies(backend: Any, orig_init: Any) -> tuple[list[Any], dict[str, int]]:
    with _SHARED_LOCK:
        entry = _SHARED_AWS_POLICIES.get(backend.partition)
        if entry is None:
            policies = orig_init(backend)
            for p in policies:
                p._emulator_shared = True
            entry = (policies, {p.arn: i for i, p in enumerate(policies)})
            _SHARED_AWS_POLICIES[backend.partition] = entry
        return entry


def _privatise(backend: Any, policy_arn: str) -> None:
    """Copy-on-write: give this account its own copy of a shared AWS-managed policy."""
    p = backend.managed_policies.get(policy_arn)
    if p is None or not getattr(p, "_emulator_shared", False):
        return
    q = copy.copy(p)
    q._emulator_shared = False
    q.versions = list(p.versions)
    q.tags = dict(p.tags)
    backend.managed_policies[policy_arn] = q
    _, index = _SHARED_AWS_POLICIES.get(backend.partition, ([], {}))
    i = index.get(policy_arn)
    if i is not None and i < len(backend.aws_managed_policies):
        backend.aws_managed_policies[i] = q


def fast_get_account_id_from(access_key: str) -> str:
    """moto's version touches iam_backends[acct][partition] for every partition of every
    account, creating (and loading ~1,580 managed policies into) four extra backends per
    account. This one only looks at backends that exist and caches hits."""
    acct = _KEY_ACCOUNT.get(access_key)
    if acct is not None:
        return acct
    for account_id, account in list(iam_models.iam_backends.items()):
        for backend in list(dict.values(account)):
            if access_key in backend.access_keys:
                _KEY_ACCOUNT[access_key] = account_id
                return account_id
    return iam_models.DEFAULT_ACCOUNT_ID


_KEY_ACCOUNT: dict[str, str] = {}


def clear_caches() -> None:
    _KEY_ACCOUNT.clear()


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True

    # ---- scale: account lookup and shared AWS-managed policies --------------
    iam_models.get_account_id_from = fast_get_account_id_from
    orig_init_aws = iam_models.IAMBackend._init_aws_policies

    def init_aws_policies(self: Any) -> list[Any]:
        if not iam_models.load_iam_aws_managed_policies():
            return []
        policies, _ = _shared_aws_policies(self, orig_init_aws)
        return list(policies)

    iam_models.IAMBackend._init_aws_policies = init_aws_policies

    for kind in ("role", "group", "user"):
        for verb in ("attach", "detach"):
            name = f"{verb}_{kind}_policy"
            orig = getattr(iam_models.IAMBackend, name)

            def wrapper(self: Any, *a: Any, _orig: Any = orig, **kw: Any) -> Any:
                arn = kw.get("policy_arn", a[0] if a else None)
                if arn:
                    _privatise(self, arn)
                return _orig(self, *a, **kw)

            setattr(iam_models.IAMBackend, name, wrapper)

    # ---- STS: remember each session's policy and expiry (the middleware enforces both) ----
    from moto.sts import models as sts_models

    orig_assume_role = sts_models.STSBackend.assume_role

    def assume_role(self: Any, *a: Any, **kw: Any) -> Any:
        role = orig_assume_role(self, *a, **kw)
        with state.LOCK:
            state.SESSIONS[role.access_key_id] = (role.policy, role.expiration)
        return role

    sts_models.STSBackend.assume_role = assume_role

    IAMBackend = iam_models.IAMBackend
    IAMResponse = iam_responses.IamResponse

    # ---- GAAD: moto omits PolicyName/PolicyId in Policies[] ------------------
    iam_models.ManagedPolicy.policy_name = property(lambda self: self.name)
    iam_models.ManagedPolicy.policy_id = property(lambda self: self.id)

    # ---- GAAD: AWS-managed policies only where the account uses them ---------
    # moto lists all ~1,580 AWS-managed policies (every version) in every account's
    # GetAccountAuthorizationDetails. What AWS does is not stated in the API reference; the
    # evidence (docs/performance.md, "Extraction CPU per account") is that AWS lists the
    # AWS-managed policies in use in the account and every customer-managed policy,
    # attached or not: aws-recon moved its "in-use" policies to GAAD and still had to
    # collect AWS-managed ones with ListPolicies (github.com/joshlarsen/aws-recon/issues/21);
    # Cloudsplaining's guide puts a GAAD download at about 100 KB per account, which the
    # full set (6 MB here) cannot be; LocalStack's AWS-recorded snapshot lists a fresh,
    # unattached customer-managed policy with AttachmentCount 0. "In use" is taken as
    # attached to a user, group or role, or set as a permissions boundary.
    orig_gaad = IAMBackend.get_account_authorization_details

    def get_account_authorization_details(self: Any, policy_filter: list[str]) -> dict[str, Any]:
        details = orig_gaad(self, policy_filter)
        in_use: set[str] = set()
        for entity in (*self.users.values(), *self.groups.values(), *self.roles.values()):
            in_use.update(entity.managed_policies)
            boundary = getattr(entity, "permissions_boundary_arn", None)
            if boundary:
                in_use.add(boundary)
        details["managed_policies"] = [
            p for p in details["managed_policies"] if p.arn.split(":")[4] != "aws" or p.arn in in_use
        ]
        return details

    IAMBackend.get_account_authorization_details = get_account_authorization_details

    # GetAccountAuthorizationDetails pages as AWS documents it (MaxItems 1-1000, default 100;
    # IsTruncated and an opaque Marker while more items follow); moto returns every item at once,
    # which would let a reader that stops after the first page pass every test. Items are paged
    # across the four lists in order: users, groups, roles, then policies.
    orig_resp_gaad = IAMResponse.get_account_authorization_details
    gaad_lists = ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies")

    def resp_get_account_authorization_details(self: Any) -> ActionResult:
        whole = orig_resp_gaad(self).result
        max_items = int(self._get_param("MaxItems") or 100)
        marker = self._get_param("Marker")
        if not 1 <= max_items <= 1000:
            raise iam_models.ValidationError("MaxItems must be between 1 and 1000.")
        if marker is not None and not marker.isdigit():
            raise iam_models.ValidationError("Invalid Marker.")
        start = int(marker or 0)
        items = [(name, item) for name in gaad_lists for item in whole[name]]
        if start > len(items):
            raise iam_models.ValidationError("Invalid Marker.")
        page = items[start:start + max_items]
        result: dict[str, Any] = {name: [item for n, item in page if n == name] for name in gaad_lists}
        result["IsTruncated"] = start + max_items < len(items)
        if result["IsTruncated"]:
            result["Marker"] = str(start + max_items)
        return ActionResult(result)

    IAMResponse.get_account_authorization_details = resp_get_account_authorization_details

    # ---- credential report -------------------------------------------------
    def get_credential_report(self: Any) -> str:
        if not self.credential_report:
            raise ReportNotPresentException("Credential report not present")
        return credential_report(self)

    IAMBackend.get_credential_report = get_credential_report

    def resp_get_credential_report(self: Any) -> ActionResult:
        report = self.backend.get_credential_report()
        gen = getattr(self.backend, "credential_report_generated_at", None) or state.utcnow()
        return ActionResult(
            {"Content": report, "ReportFormat": "text/csv", "GeneratedTime": gen}
        )

    IAMResponse.get_credential_report = resp_get_credential_report

    orig_generate = IAMBackend.generate_report

    def generate_report(self: Any) -> None:
        orig_generate(self)
        self.credential_report_generated_at = state.utcnow()

    IAMBackend.generate_report = generate_report

    # ---- password last changed ---------------------------------------------
    orig_create_lp = IAMBackend.create_login_profile
    orig_update_lp = IAMBackend.update_login_profile

    def create_login_profile(self: Any, user_name: str, password: str) -> Any:
        user = orig_create_lp(self, user_name, password)
        user.password_last_changed = state.utcnow()
        return user

    def update_login_profile(self: Any, user_name: str, password: str, *a: Any, **kw: Any) -> Any:
        res = orig_update_lp(self, user_name, password, *a, **kw)
        if password:
            self.get_user(user_name).password_last_changed = state.utcnow()
        return res

    IAMBackend.create_login_profile = create_login_profile
    IAMBackend.update_login_profile = update_login_profile

    # ---- account summary -----------------------------------------------------
    orig_summary = IAMBackend.get_account_summary

    def get_account_summary(self: Any) -> Any:
        summary = orig_summary(self)
        root = state.root_state(self.account_id)
        summary._account_mfa_enabled = 1 if root.mfa in ("virtual", "hardware") else 0
        summary._account_access_keys_present = 1 if root.keys else 0
        summary._account_password_present = 1 if root.password else 0
        return summary

    IAMBackend.get_account_summary = get_account_summary

    # moto's SummaryMap has no AccountPasswordPresent key; real AWS reports it
    orig_summary_map = iam_models.AccountSummary.summary_map.fget

    def summary_map(self: Any) -> dict[str, Any]:
        result = orig_summary_map(self)
        if hasattr(self, "_account_password_present"):
            result["AccountPasswordPresent"] = self._account_password_present
        return result

    iam_models.AccountSummary.summary_map = property(summary_map)

    # ---- virtual MFA devices incl. root --------------------------------------
    def list_virtual_mfa_devices(
        self: Any, assignment_status: str, marker: str | None, max_items: int
    ) -> tuple[list[Any], str | None]:
        devices: list[Any] = []
        root = state.root_state(self.account_id)
        if root.mfa == "virtual":
            devices.append(RootVirtualMfaDevice(self.account_id, root))
        devices.extend(self.virtual_mfa_devices.values())
        if assignment_status == "Assigned":
            devices = [d for d in devices if d.enable_date]
        elif assignment_status == "Unassigned":
            devices = [d for d in devices if not d.enable_date]
        max_items = int(max_items)
        start = int(marker) if marker else 0
        if start > len(devices):
            raise iam_models.ValidationError("Invalid Marker.")
        page = devices[start : start + max_items]
        next_marker = str(start + max_items) if start + max_items < len(devices) else None
        return page, next_marker

    IAMBackend.list_virtual_mfa_devices = list_virtual_mfa_devices

    # ---- server certificates with real dates --------------------------------
    Certificate = iam_models.Certificate
    orig_cert_init = Certificate.__init__

    def cert_init(self: Any, *a: Any, **kw: Any) -> None:
        orig_cert_init(self, *a, **kw)
        now = state.utcnow()
        self.upload_date = now
        self.expiration = now + timedelta(days=365)
        self.certificate_id = "ASCA" + "".join(
            random.choices(string.ascii_uppercase + string.digits, k=17)
        )

    Certificate.__init__ = cert_init

    def resp_list_server_certificates(self: Any) -> ActionResult:
        certs = self.backend.list_server_certificates()
        return ActionResult(
            {
                "ServerCertificateMetadataList": [_cert_meta(c) for c in certs],
                "IsTruncated": False,
            }
        )

    def resp_get_server_certificate(self: Any) -> ActionResult:
        cert = self.backend.get_server_certificate(self._get_param("ServerCertificateName"))
        server_cert: dict[str, Any] = {
            "ServerCertificateMetadata": _cert_meta(cert),
            "CertificateBody": cert.cert_body,
        }
        if cert.cert_chain:
            server_cert["CertificateChain"] = cert.cert_chain
        return ActionResult({"ServerCertificate": server_cert})

    def resp_upload_server_certificate(self: Any) -> ActionResult:
        cert = self.backend.upload_server_certificate(
            self._get_param("ServerCertificateName"),
            self._get_param("CertificateBody"),
            self._get_param("PrivateKey"),
            cert_chain=self._get_param("CertificateChain"),
            path=self._get_param("Path"),
        )
        return ActionResult({"ServerCertificateMetadata": _cert_meta(cert)})

    IAMResponse.list_server_certificates = resp_list_server_certificates
    IAMResponse.get_server_certificate = resp_get_server_certificate
    IAMResponse.upload_server_certificate = resp_upload_server_certificate
