"""Transform: raw API payloads (as stored in S3) into staging rows. Pure functions, no I/O.

Each data set's transform is the function of this module named after it: it takes the payload
(and, as keywords, the payloads of the data sets its registry entry `reads`) and returns
{table: [row tuples]} with columns in the order of COLUMNS[table] (snapshot_date and account_id
first, added by the loader).
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime

# COLUMNS (staging table -> its columns after snapshot_date, account_id, in COPY order) and
# DATASET_TABLES (data set -> the tables it fills) are the registry's, also for the loader
from iam_audit.ingest.datasets import BY_NAME, COLUMNS, DATASET_TABLES, NAMES  # noqa: F401

# Credential report values that mean "no value".
_NO_VALUE = {"N/A", "no_information", "not_supported", ""}


class MalformedPayload(ValueError):
    """A raw payload does not have the documented shape; the message names the field.

    The loader records the data set as not usable ('error') for the account, so every
    check that needs it gives 'error' verdicts naming the field instead of reading
    NULLs or empty lists as facts.
    """

    def __init__(self, dataset: str, detail: str):
        super().__init__(f"{dataset}: {detail}")
        self.dataset = dataset
        self.detail = detail


def _require(payload, dataset: str, keys: tuple[str, ...], kind: type = list, where: str = "the response") -> None:
    """The documented keys must be present with the documented type (an empty list is fine, absence is not)."""
    if not isinstance(payload, dict):
        raise MalformedPayload(dataset, f"{where} is a {type(payload).__name__}, not an object")
    for key in keys:
        if key not in payload:
            raise MalformedPayload(dataset, f"{where} has no {key}")
        if not isinstance(payload[key], kind):
            raise MalformedPayload(dataset, f"{where}: {key} is a {type(payload[key]).__name__}, not a {kind.__name__}")


def _field(item: dict, key: str, dataset: str, where: str):
    """A field every item of the list documents: missing or empty is malformed."""
    value = item.get(key) if isinstance(item, dict) else None
    if value in (None, ""):
        raise MalformedPayload(dataset, f"{where} has no {key}")
    return value


# The credential report's documented columns (IAM User Guide, "Getting credential reports").
CREDENTIAL_REPORT_HEADER = (
    "user", "arn", "user_creation_time", "password_enabled", "password_last_used", "password_last_changed",
    "password_next_rotation", "mfa_active", "access_key_1_active", "access_key_1_last_rotated",
    "access_key_1_last_used_date", "access_key_1_last_used_region", "access_key_1_last_used_service",
    "access_key_2_active", "access_key_2_last_rotated", "access_key_2_last_used_date",
    "access_key_2_last_used_region", "access_key_2_last_used_service", "cert_1_active", "cert_1_last_rotated",
    "cert_2_active", "cert_2_last_rotated",
)
_REPORT_BOOLEANS = ("password_enabled", "mfa_active", "access_key_1_active", "access_key_2_active",
                    "cert_1_active", "cert_2_active")
_REPORT_TIMESTAMPS = ("user_creation_time", "password_last_used", "password_last_changed", "password_next_rotation",
                      "access_key_1_last_rotated", "access_key_1_last_used_date", "access_key_2_last_rotated",
                      "access_key_2_last_used_date", "cert_1_last_rotated", "cert_2_last_rotated")
_REPORT_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:(root|user/.+)$")


def _is_timestamp(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _validate_report_row(row: dict, line: int, header_length: int) -> None:
    """Every value of a credential report row in its column's domain, or MalformedPayload naming it."""
    if None in row:
        raise MalformedPayload("credential_report", f"line {line} has more values than the header's {header_length}")
    missing = [column for column, value in row.items() if value is None]
    if missing:
        raise MalformedPayload("credential_report", f"line {line} is short: no value for {', '.join(missing)}")
    user = row["user"]
    where = f"line {line} (user {user!r})"
    if not user:
        raise MalformedPayload("credential_report", f"line {line}: column user is empty")
    if not _REPORT_ARN.match(row["arn"]):
        raise MalformedPayload("credential_report",
                               f"{where}: column arn {row['arn']!r} is not an IAM user or root ARN")
    is_root = user == "<root_account>"
    for column in _REPORT_BOOLEANS:
        # AWS writes them in lowercase today; a change of case must not turn a whole account's verdicts
        # into errors, so the domain is checked (and _bool reads the value) without regard to case
        value = row[column].strip().lower()
        allowed = ("true", "false", "not_supported") if is_root and column == "password_enabled" else ("true", "false")
        if value not in allowed:
            raise MalformedPayload("credential_report",
                                   f"{where}: column {column} is {row[column]!r}, not one of {', '.join(allowed)}")
    for column in _REPORT_TIMESTAMPS:
        value = row[column].strip()
        if value not in _NO_VALUE and not _is_timestamp(value):
            raise MalformedPayload("credential_report",
                                   f"{where}: column {column} is {value!r}, neither a timestamp nor N/A")
    if row["user_creation_time"].strip() in _NO_VALUE:
        raise MalformedPayload("credential_report", f"{where}: column user_creation_time is empty")


def _report_rows(payload) -> list[dict]:
    """The credential report's rows, validated: documented header, full rows, values in their domains."""
    _require(payload, "credential_report", ("Content",), str)
    reader = csv.DictReader(io.StringIO(payload["Content"]))
    header = reader.fieldnames or []
    missing = [column for column in CREDENTIAL_REPORT_HEADER if column not in header]
    if missing:
        raise MalformedPayload("credential_report", f"the header lacks column(s) {', '.join(missing)}")
    rows = list(reader)
    for number, row in enumerate(rows, start=2):
        _validate_report_row(row, number, len(header))
    return rows


def _ts(value) -> str | None:
    """An ISO-8601 timestamp string, or None for the credential report's placeholders."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    value = str(value).strip()
    return None if value in _NO_VALUE else value


def _bool(value) -> bool | None:
    if value is None:
        return None
    value = str(value).strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _text(value) -> str | None:
    if value is None:
        return None
    value = str(value)
    return None if value in _NO_VALUE else value


def credential_report(payload: dict) -> dict[str, list[tuple]]:
    rows = []
    report = _report_rows(payload)
    generated = _ts(payload.get("GeneratedTime"))
    for r in report:
        is_root = r["user"] == "<root_account>"
        rows.append((
            r["user"], r["arn"], is_root, generated, _ts(r.get("user_creation_time")),
            _bool(r.get("password_enabled")),  # root: NULL ('not_supported') unless AWS says false
            _ts(r.get("password_last_used")), _ts(r.get("password_last_changed")),
            _ts(r.get("password_next_rotation")), _bool(r.get("mfa_active")),
            _bool(r.get("access_key_1_active")), _ts(r.get("access_key_1_last_rotated")),
            _ts(r.get("access_key_1_last_used_date")), _text(r.get("access_key_1_last_used_region")),
            _text(r.get("access_key_1_last_used_service")),
            _bool(r.get("access_key_2_active")), _ts(r.get("access_key_2_last_rotated")),
            _ts(r.get("access_key_2_last_used_date")), _text(r.get("access_key_2_last_used_region")),
            _text(r.get("access_key_2_last_used_service")),
            _bool(r.get("cert_1_active")), _ts(r.get("cert_1_last_rotated")),
            _bool(r.get("cert_2_active")), _ts(r.get("cert_2_last_rotated")),
        ))
    return {"credential_report": rows}


def is_default_version(policy: dict, version: dict) -> bool:
    """The version in force: flagged IsDefaultVersion, or the policy's DefaultVersionId."""
    return bool(version.get("IsDefaultVersion")) or version.get("VersionId") == policy.get("DefaultVersionId")


def _default_document(policy: dict):
    for version in policy.get("PolicyVersionList", []):
        if is_default_version(policy, version):
            return version.get("Document")
    return None


def _document(value):
    """Policy documents arrive decoded by botocore; tolerate JSON text too."""
    if isinstance(value, str):
        from urllib.parse import unquote

        text = value if value.lstrip().startswith("{") else unquote(value)
        return json.loads(text)
    return value


def authorization_details(payload: dict) -> dict[str, list[tuple]]:
    _require(payload, "authorization_details", ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies"))
    for key, fields in (("UserDetailList", ("Arn", "UserName")), ("GroupDetailList", ("Arn", "GroupName")),
                        ("RoleDetailList", ("Arn", "RoleName")), ("Policies", ("Arn",))):
        for index, item in enumerate(payload[key]):
            for name in fields:
                _field(item, name, "authorization_details", f"{key}[{index}]")
            for nested in ("GroupList", "AttachedManagedPolicies", "UserPolicyList", "GroupPolicyList",
                           "RolePolicyList", "PolicyVersionList"):
                if nested in item and not isinstance(item[nested], list):
                    raise MalformedPayload("authorization_details", f"{key}[{index}].{nested} is not a list")
            for n, attached in enumerate(item.get("AttachedManagedPolicies", [])):
                _field(attached, "PolicyArn", "authorization_details",
                       f"{key}[{index}].AttachedManagedPolicies[{n}]")
            for nested in ("UserPolicyList", "GroupPolicyList", "RolePolicyList"):
                for n, inline in enumerate(item.get(nested, [])):
                    _field(inline, "PolicyName", "authorization_details", f"{key}[{index}].{nested}[{n}]")
    out: dict[str, list[tuple]] = {t: [] for t in DATASET_TABLES["authorization_details"]}
    for u in payload.get("UserDetailList", []):
        out["users"].append((
            u["Arn"], u["UserName"], u.get("UserId"), u.get("Path"), _ts(u.get("CreateDate")),
            (u.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn"), _json(u.get("Tags")),
        ))
        for group in u.get("GroupList", []):
            out["group_memberships"].append((u["Arn"], group))
        for p in u.get("AttachedManagedPolicies", []):
            out["policy_attachments"].append(("user", u["Arn"], u["UserName"], p["PolicyArn"], p.get("PolicyName")))
        for p in u.get("UserPolicyList", []):
            out["inline_policies"].append(
                ("user", u["Arn"], u["UserName"], p["PolicyName"], _json(_document(p.get("PolicyDocument")))))
    for g in payload.get("GroupDetailList", []):
        out["groups"].append((g["Arn"], g["GroupName"], g.get("GroupId"), g.get("Path"), _ts(g.get("CreateDate"))))
        for p in g.get("AttachedManagedPolicies", []):
            out["policy_attachments"].append(("group", g["Arn"], g["GroupName"], p["PolicyArn"], p.get("PolicyName")))
        for p in g.get("GroupPolicyList", []):
            out["inline_policies"].append(
                ("group", g["Arn"], g["GroupName"], p["PolicyName"], _json(_document(p.get("PolicyDocument")))))
    for r in payload.get("RoleDetailList", []):
        last_used = r.get("RoleLastUsed") or {}
        out["roles"].append((
            r["Arn"], r["RoleName"], r.get("RoleId"), r.get("Path"), _ts(r.get("CreateDate")),
            _json(_document(r.get("AssumeRolePolicyDocument"))), _ts(last_used.get("LastUsedDate")),
            last_used.get("Region"), (r.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn"),
            _json(r.get("Tags")),
        ))
        for p in r.get("AttachedManagedPolicies", []):
            out["policy_attachments"].append(("role", r["Arn"], r["RoleName"], p["PolicyArn"], p.get("PolicyName")))
        for p in r.get("RolePolicyList", []):
            out["inline_policies"].append(
                ("role", r["Arn"], r["RoleName"], p["PolicyName"], _json(_document(p.get("PolicyDocument")))))
    # Attachment counts come from the entity lists of the same response: they are
    # consistent with the attachments stored, whatever AttachmentCount says.
    attached: dict[str, int] = {}
    for _, _, _, policy_arn, _ in dict.fromkeys(out["policy_attachments"]):
        attached[policy_arn] = attached.get(policy_arn, 0) + 1
    boundaries_used: dict[str, int] = {}
    for entity in payload.get("UserDetailList", []) + payload.get("RoleDetailList", []):
        boundary = (entity.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        if boundary:
            boundaries_used[boundary] = boundaries_used.get(boundary, 0) + 1
    for p in payload.get("Policies", []):
        arn = p["Arn"]
        is_aws = arn.split(":")[4] == "aws"
        attachments = attached.get(arn, 0)
        boundaries = boundaries_used.get(arn, 0)
        if is_aws and attachments == 0 and boundaries == 0:
            continue  # AWS-managed policies nobody in the account uses
        out["managed_policies"].append((
            arn, p.get("PolicyName") or arn.rsplit("/", 1)[-1], p.get("PolicyId"), p.get("Path"), is_aws,
            attachments, boundaries, p.get("IsAttachable"), p.get("DefaultVersionId"), _ts(p.get("CreateDate")),
            _ts(p.get("UpdateDate")), _json(_document(_default_document(p))),
        ))
    # An entity can list a policy once; keep primary keys unique even if the API repeats itself.
    out["policy_attachments"] = list(dict.fromkeys(out["policy_attachments"]))
    out["group_memberships"] = list(dict.fromkeys(out["group_memberships"]))
    return out


def password_policy(payload: dict) -> dict[str, list[tuple]]:
    if not isinstance(payload, dict) or "PasswordPolicy" not in payload:
        raise MalformedPayload("password_policy", "the response has no PasswordPolicy (null when there is none)")
    p = payload["PasswordPolicy"]
    if p is not None and not isinstance(p, dict):
        raise MalformedPayload("password_policy", f"PasswordPolicy is a {type(p).__name__}, not an object")
    for key in ("MinimumPasswordLength", "MaxPasswordAge", "PasswordReusePrevention"):
        if p is not None and key in p and not (isinstance(p[key], int) and not isinstance(p[key], bool)):
            raise MalformedPayload("password_policy", f"PasswordPolicy.{key} is {p[key]!r}, not an integer")
    for key in ("RequireSymbols", "RequireNumbers", "RequireUppercaseCharacters", "RequireLowercaseCharacters",
                "AllowUsersToChangePassword", "ExpirePasswords", "HardExpiry"):
        if p is not None and key in p and not isinstance(p[key], bool):
            raise MalformedPayload("password_policy", f"PasswordPolicy.{key} is {p[key]!r}, not true/false")
    if p is None:
        return {"password_policy": [(False,) + (None,) * 10]}
    return {"password_policy": [(
        True, p.get("MinimumPasswordLength"), p.get("RequireSymbols"), p.get("RequireNumbers"),
        p.get("RequireUppercaseCharacters"), p.get("RequireLowercaseCharacters"),
        p.get("AllowUsersToChangePassword"), p.get("ExpirePasswords"), p.get("MaxPasswordAge"),
        p.get("PasswordReusePrevention"), p.get("HardExpiry"),
    )]}


def account_summary(payload: dict) -> dict[str, list[tuple]]:
    _require(payload, "account_summary", ("SummaryMap",), dict)
    s = payload["SummaryMap"]
    for key in ("AccountMFAEnabled", "AccountAccessKeysPresent", "AccountPasswordPresent"):
        if key in s and s[key] not in (0, 1):
            raise MalformedPayload("account_summary", f"SummaryMap.{key} is {s[key]!r}, not 0 or 1")
    for key in ("AccountMFAEnabled", "AccountAccessKeysPresent"):
        if key not in s:
            raise MalformedPayload("account_summary", f"SummaryMap has no {key}")
    return {"account_summary": [(s.get("AccountMFAEnabled"), s.get("AccountAccessKeysPresent"), _json(s),
                                 s.get("AccountPasswordPresent"))]}


def virtual_mfa_devices(payload: dict) -> dict[str, list[tuple]]:
    _require(payload, "virtual_mfa_devices", ("VirtualMFADevices",))
    rows = []
    for index, d in enumerate(payload["VirtualMFADevices"]):
        _field(d, "SerialNumber", "virtual_mfa_devices", f"VirtualMFADevices[{index}]")
        user = d.get("User") or {}
        if not isinstance(user, dict) or (user and not user.get("Arn")):
            raise MalformedPayload("virtual_mfa_devices", f"VirtualMFADevices[{index}].User has no Arn")
        rows.append((d["SerialNumber"], user.get("Arn"), user.get("UserName"), _ts(d.get("EnableDate"))))
    return {"virtual_mfa_devices": rows}


def access_keys(payload: dict, credential_report: dict | None = None,
                authorization_details: dict | None = None) -> dict[str, list[tuple]]:
    """Key metadata from ListAccessKeys; last use joined from the credential report.

    The report's access_key_N_last_rotated is the key's creation time, which is how
    a report slot is matched to a key id without a GetAccessKeyLastUsed call per key.
    The user's ARN is AWS's (credential report, else GetAccountAuthorizationDetails): it holds
    the user's path and the partition, which a hand-built ARN would not.
    """
    _require(payload, "access_keys", ("AccessKeyMetadata",))
    for index, k in enumerate(payload["AccessKeyMetadata"]):
        for name in ("UserName", "AccessKeyId", "Status"):
            _field(k, name, "access_keys", f"AccessKeyMetadata[{index}]")
        if k["Status"] not in ("Active", "Inactive", "Expired"):
            raise MalformedPayload("access_keys", f"AccessKeyMetadata[{index}].Status is {k['Status']!r}")
    last_used: dict[tuple[str, str], tuple] = {}
    user_arns = {u["UserName"]: u["Arn"] for u in (authorization_details or {}).get("UserDetailList", [])
                 if u.get("UserName") and u.get("Arn")}
    if credential_report:
        try:
            report = _report_rows(credential_report)
        except MalformedPayload as exc:
            raise MalformedPayload("access_keys", f"last use comes from the credential report, which is malformed "
                                                  f"({exc.detail})") from None
        for r in report:
            if r.get("arn") and r["user"] != "<root_account>":
                user_arns[r["user"]] = r["arn"]
            for slot in ("1", "2"):
                rotated = _ts(r.get(f"access_key_{slot}_last_rotated"))
                if rotated:
                    last_used[(r["user"], _normalise_ts(rotated))] = (
                        _ts(r.get(f"access_key_{slot}_last_used_date")),
                        _text(r.get(f"access_key_{slot}_last_used_region")),
                        _text(r.get(f"access_key_{slot}_last_used_service")),
                    )
    rows = []
    for k in payload["AccessKeyMetadata"]:
        created = _ts(k.get("CreateDate"))
        used = last_used.get((k["UserName"], _normalise_ts(created)), (None, None, None))
        if k["UserName"] not in user_arns:
            raise MalformedPayload("access_keys", f"access key {k['AccessKeyId']} of user {k['UserName']!r}: the user "
                                   "is in neither the credential report nor GetAccountAuthorizationDetails, so its "
                                   "ARN is unknown")
        rows.append((
            k["UserName"], user_arns[k["UserName"]], k["AccessKeyId"], k["Status"], created, *used,
        ))
    return {"access_keys": rows}


def _normalise_ts(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(microsecond=0).isoformat()
    except ValueError:
        return value


def server_certificates(payload: dict) -> dict[str, list[tuple]]:
    _require(payload, "server_certificates", ("ServerCertificateMetadataList",))
    for index, c in enumerate(payload["ServerCertificateMetadataList"]):
        for name in ("Arn", "ServerCertificateName", "Expiration"):
            _field(c, name, "server_certificates", f"ServerCertificateMetadataList[{index}]")
    return {"server_certificates": [
        (c["Arn"], c["ServerCertificateName"], c.get("ServerCertificateId"), c.get("Path"),
         _ts(c.get("UploadDate")), _ts(c.get("Expiration")))
        for c in payload["ServerCertificateMetadataList"]
    ]}


def regions(payload: dict) -> dict[str, list[tuple]]:
    _require(payload, "regions", ("Regions",))
    for index, r in enumerate(payload["Regions"]):
        _field(r, "RegionName", "regions", f"Regions[{index}]")
    return {"regions": [(r["RegionName"], r.get("OptInStatus")) for r in payload["Regions"]]}


def access_analyzers(payload: dict) -> dict[str, list[tuple]]:
    """Analyzers, and per region whether ListAnalyzers could be read (a region-deny SCP refuses it)."""
    _require(payload, "access_analyzers", ("AnalyzersByRegion",), dict)
    rows, region_rows = [], []
    for region, analyzers in sorted(payload["AnalyzersByRegion"].items()):
        if not isinstance(analyzers, list):
            raise MalformedPayload("access_analyzers", f"AnalyzersByRegion.{region} is not a list of analyzers")
        for index, a in enumerate(analyzers):
            for name in ("arn", "type", "status"):
                _field(a, name, "access_analyzers", f"AnalyzersByRegion.{region}[{index}]")
        region_rows.append((region, "ok", None, None, len(analyzers)))
        for a in analyzers:
            rows.append((region, a["arn"], a.get("name"), a.get("type"), a.get("status")))
    for region, err in sorted((payload.get("RegionErrors") or {}).items()):
        region_rows.append((region, "error", err.get("Code"), err.get("Message"), None))
    return {"access_analyzers": rows, "access_analyzer_regions": region_rows}


def alternate_contacts(payload: dict) -> dict[str, list[tuple]]:
    rows = []
    for contact_type, c in sorted(payload.items()):
        if c:
            rows.append((contact_type, True, c.get("Name"), c.get("EmailAddress"), c.get("Title")))
        else:
            rows.append((contact_type, False, None, None, None))
    return {"alternate_contacts": rows}


def identity_providers(payload: dict) -> dict[str, list[tuple]]:
    _require(payload, "identity_providers", ("SAMLProviderList", "OpenIDConnectProviderList"))
    rows = [(p["Arn"], "saml", _ts(p.get("CreateDate")), _ts(p.get("ValidUntil")))
            for p in payload["SAMLProviderList"]]
    rows += [(p["Arn"], "oidc", None, None) for p in payload["OpenIDConnectProviderList"]]
    return {"identity_providers": rows}


def transform_dataset(dataset: str, payload, account_id: str, raw: dict) -> dict[str, list[tuple]]:
    """Rows for one data set of account `account_id`; `raw` holds the account's other payloads, of
    which the transform gets those its registry entry `reads`.

    Raises MalformedPayload, naming the field, when the payload does not have the documented shape.
    """
    transform = _TRANSFORMS[dataset]
    reads = {name: raw.get(name) for name in BY_NAME[dataset].reads}
    try:
        return transform(payload, **reads)
    except MalformedPayload:
        raise
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedPayload(dataset, f"unexpected shape ({type(exc).__name__}: {exc})") from None


# each data set's transform is this module's function of its name
_TRANSFORMS = {name: globals()[name] for name in NAMES}
