"""Organisation-level facts, collected once per run with the discovery credentials (the management
account or a delegated administrator), stored under the snapshot's organization/ prefix and staged
for the checks and the manual-control evidence (aws_policy_manual_evidence).

    <prefix>/snapshot_date=YYYY-MM-DD/organization/<dataset>.json.gz   one per collected data set
    <prefix>/snapshot_date=YYYY-MM-DD/organization/_manifest.json     written last

Data sets (each collected on its own: a refused call makes that one data set 'error', never the run):
    organization_features          iam:ListOrganizationsFeatures (centralised root access)
    organization_units             organizations:DescribeOrganization, ListRoots,
                                   ListOrganizationalUnitsForParent, ListAccountsForParent (the OU tree)
    organization_policies          organizations:ListPolicies (SCPs and RCPs), ListTargetsForPolicy
    organization_delegated_admins  organizations:ListDelegatedAdministrators,
                                   ListDelegatedServicesForAccount, DescribeResourcePolicy
Checks read them through iam_audit_account_readiness like account data sets: a data set that is
missing, refused or malformed turns the verdicts of the checks needing it into 'error'.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from iam_audit.aws import error_code
from iam_audit.ingest import layout

log = logging.getLogger(__name__)

ORG_DATASETS = ("organization_features", "organization_units", "organization_policies",
                "organization_delegated_admins")
POLICY_TYPES = ("SERVICE_CONTROL_POLICY", "RESOURCE_CONTROL_POLICY")
# staged per snapshot date (retention removes them with the date)
ORG_TABLES = ("organization_datasets", "organization_info", "organization_features", "organization_parents",
              "organization_policies", "organization_policy_targets", "organization_delegated_admins",
              "organization_delegation_policy")
MANIFEST = "_manifest.json"


class Malformed(ValueError):
    """A stored organisation data set does not have the documented shape."""


def org_prefix(prefix: str, snapshot_date) -> str:
    return f"{prefix}/snapshot_date={snapshot_date}/organization/"


def dataset_key(prefix: str, snapshot_date, dataset: str) -> str:
    return org_prefix(prefix, snapshot_date) + f"{dataset}.json.gz"


def manifest_key(prefix: str, snapshot_date) -> str:
    return org_prefix(prefix, snapshot_date) + MANIFEST


# ---- collection --------------------------------------------------------------------

def _pages(client, operation: str, key: str, **kwargs) -> list:
    items: list = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        if not isinstance(page.get(key), list):
            raise Malformed(f"{operation}: a response page has no {key} list")
        items += page[key]
    return items


def read_features(iam) -> dict:
    response = iam.list_organizations_features()
    return {"OrganizationId": response.get("OrganizationId"), "EnabledFeatures": response.get("EnabledFeatures")}


def read_units(org) -> dict:
    organization = org.describe_organization()["Organization"]
    roots = _pages(org, "list_roots", "Roots")
    units, accounts = [], []
    pending = [root["Id"] for root in roots]
    while pending:  # breadth first over the tree; OUs nest at most five deep
        parent = pending.pop(0)
        for unit in _pages(org, "list_organizational_units_for_parent", "OrganizationalUnits", ParentId=parent):
            units.append({"Id": unit["Id"], "Name": unit.get("Name"), "ParentId": parent})
            pending.append(unit["Id"])
        for account in _pages(org, "list_accounts_for_parent", "Accounts", ParentId=parent):
            accounts.append({"Id": account["Id"], "Name": account.get("Name"), "ParentId": parent})
    return {
        "Organization": {"Id": organization.get("Id"), "MasterAccountId": organization.get("MasterAccountId"),
                         "FeatureSet": organization.get("FeatureSet")},
        "Roots": [{"Id": r["Id"], "Name": r.get("Name"), "PolicyTypes": r.get("PolicyTypes", [])} for r in roots],
        "OrganizationalUnits": units,
        "Accounts": accounts,
    }


def read_policies(org) -> dict:
    policies = []
    for policy_type in POLICY_TYPES:
        try:
            listed = _pages(org, "list_policies", "Policies", Filter=policy_type)
        except ClientError as exc:
            # a policy type never enabled in the organisation has no policies (RCPs before 2024-11)
            if error_code(exc) != "PolicyTypeNotEnabledException":
                raise
            listed = []
        for policy in listed:
            targets = _pages(org, "list_targets_for_policy", "Targets", PolicyId=policy["Id"])
            policies.append({
                "Id": policy["Id"], "Name": policy.get("Name"), "Type": policy_type,
                "AwsManaged": policy.get("AwsManaged"),
                "Targets": [{"TargetId": t["TargetId"], "Type": t.get("Type"), "Name": t.get("Name")}
                            for t in targets],
            })
    return {"Policies": policies}


def read_delegated_admins(org) -> dict:
    admins = []
    for admin in _pages(org, "list_delegated_administrators", "DelegatedAdministrators"):
        services = _pages(org, "list_delegated_services_for_account", "DelegatedServices", AccountId=admin["Id"])
        admins.append({"Id": admin["Id"], "Name": admin.get("Name"),
                       "Services": [{"ServicePrincipal": s["ServicePrincipal"],
                                     "DelegationEnabledDate": s.get("DelegationEnabledDate")} for s in services]})
    try:
        content = org.describe_resource_policy()["ResourcePolicy"].get("Content")
    except ClientError as exc:
        if error_code(exc) != "ResourcePolicyNotFoundException":
            raise
        content = None  # no delegation policy: Organizations is administered from the management account
    return {"DelegatedAdministrators": admins, "ResourcePolicy": content}


def _collect(name: str, read: Callable[[], dict]) -> dict:
    try:
        return {"status": "ok", "payload": read()}
    except ClientError as exc:
        return {"status": "error", "error_code": error_code(exc), "error_message": str(exc)[:2000]}
    except Malformed as exc:
        return {"status": "error", "error_code": "MalformedResponse", "error_message": str(exc)}
    except BotoCoreError as exc:
        return {"status": "error", "error_code": type(exc).__name__, "error_message": str(exc)[:2000]}


def collect_organization(target) -> dict[str, dict]:
    """Each organisation data set as {"status": "ok", "payload": ...} or {"status": "error", ...}."""
    iam, org = target.client("iam"), target.client("organizations")
    readers = {
        "organization_features": lambda: read_features(iam),
        "organization_units": lambda: read_units(org),
        "organization_policies": lambda: read_policies(org),
        "organization_delegated_admins": lambda: read_delegated_admins(org),
    }
    results = {name: _collect(name, read) for name, read in readers.items()}
    for name, result in results.items():
        if result["status"] != "ok":
            log.warning("organisation data set %s not collected: %s: %s", name, result["error_code"],
                        result["error_message"])
    return results


def write_organization(store, prefix: str, snapshot_date, results: dict[str, dict], run_id: str | None) -> dict:
    """Every collected data set, then the manifest (an 'incomplete' marker first, as for accounts)."""
    key = manifest_key(prefix, snapshot_date)
    store.put(key, json.dumps({"format": 1, "incomplete": True}).encode())
    datasets = {}
    for name, result in results.items():
        if result["status"] == "ok":
            blob = layout.encode(result["payload"])
            object_key = dataset_key(prefix, snapshot_date, name)
            store.put(object_key, blob)
            datasets[name] = {"status": "ok", "key": object_key, "sha256": hashlib.sha256(blob).hexdigest()}
        else:
            datasets[name] = {k: result.get(k) for k in ("status", "error_code", "error_message")}
    manifest = {"format": 1, "snapshot_date": str(snapshot_date), "run_id": run_id,
                "collected_at": datetime.now(UTC).isoformat(), "datasets": datasets}
    store.put(key, json.dumps(manifest, sort_keys=True, indent=1).encode("utf-8"))
    return manifest


def collect_and_store(target, store, prefix: str, snapshot_date, run_id: str | None) -> dict:
    """Discovery's part: collect the organisation data sets and store them; never raises for AWS errors."""
    return write_organization(store, prefix, snapshot_date, collect_organization(target), run_id)


# ---- staging -----------------------------------------------------------------------

def _require(condition: bool, what: str) -> None:
    if not condition:
        raise Malformed(what)


def _text(value, what: str, optional: bool = False):
    _require(isinstance(value, str) or (optional and value is None), f"{what} is not a string")
    return value


def rows_features(payload) -> dict[str, list[tuple]]:
    _require(isinstance(payload, dict), "not an object")
    features = payload.get("EnabledFeatures")
    _require(isinstance(features, list), "EnabledFeatures is not a list")
    org_id = _text(payload.get("OrganizationId"), "OrganizationId", optional=True)
    # an organisation without any feature is a row with feature NULL: "collected, nothing enabled"
    return {"organization_features": [(org_id, _text(f, "a feature")) for f in features] or [(org_id, None)]}


def rows_units(payload) -> dict[str, list[tuple]]:
    _require(isinstance(payload, dict), "not an object")
    info = payload.get("Organization")
    _require(isinstance(info, dict), "Organization is not an object")
    parents = []
    for key, kind in (("Roots", "ROOT"), ("OrganizationalUnits", "ORGANIZATIONAL_UNIT"), ("Accounts", "ACCOUNT")):
        items = payload.get(key)
        _require(isinstance(items, list), f"{key} is not a list")
        for item in items:
            _require(isinstance(item, dict), f"an entry of {key} is not an object")
            parents.append((_text(item.get("Id"), f"{key} Id"), kind, _text(item.get("Name"), f"{key} Name", True),
                            None if kind == "ROOT" else _text(item.get("ParentId"), f"{key} ParentId")))
    return {"organization_info": [(_text(info.get("Id"), "Organization Id", True),
                                   _text(info.get("MasterAccountId"), "MasterAccountId", True),
                                   _text(info.get("FeatureSet"), "FeatureSet", True))],
            "organization_parents": parents}


def rows_policies(payload) -> dict[str, list[tuple]]:
    _require(isinstance(payload, dict) and isinstance(payload.get("Policies"), list), "Policies is not a list")
    policies, targets = [], []
    for p in payload["Policies"]:
        _require(isinstance(p, dict) and p.get("Type") in POLICY_TYPES, "a policy has no known Type")
        policy_id = _text(p.get("Id"), "policy Id")
        _require(isinstance(p.get("AwsManaged"), bool | None), "AwsManaged is not a boolean")
        policies.append((policy_id, p["Type"], _text(p.get("Name"), "policy Name", True), p.get("AwsManaged")))
        _require(isinstance(p.get("Targets"), list), f"policy {policy_id} has no Targets list")
        for t in p["Targets"]:
            _require(isinstance(t, dict), "a target is not an object")
            targets.append((policy_id, _text(t.get("TargetId"), "TargetId"), _text(t.get("Type"), "target Type", True),
                            _text(t.get("Name"), "target Name", True)))
    return {"organization_policies": policies, "organization_policy_targets": targets}


def _delegation_principals(content) -> list[str]:
    """The AWS principals a delegation policy (Organizations resource policy) names, in order."""
    if content is None:
        return []
    document = json.loads(_text(content, "ResourcePolicy"))
    statements = document.get("Statement") if isinstance(document, dict) else None
    statements = [statements] if isinstance(statements, dict) else statements
    _require(isinstance(statements, list), "ResourcePolicy has no Statement")
    found = []
    for statement in statements:
        principal = statement.get("Principal") if isinstance(statement, dict) else None
        values = principal.get("AWS") if isinstance(principal, dict) else principal
        for value in [values] if isinstance(values, str) else values or []:
            if isinstance(value, str) and value not in found and statement.get("Effect") == "Allow":
                found.append(value)
    return found


def rows_delegated_admins(payload) -> dict[str, list[tuple]]:
    _require(isinstance(payload, dict) and isinstance(payload.get("DelegatedAdministrators"), list),
             "DelegatedAdministrators is not a list")
    admins = []
    for a in payload["DelegatedAdministrators"]:
        _require(isinstance(a, dict) and isinstance(a.get("Services"), list), "an administrator has no Services")
        for s in a["Services"]:
            _require(isinstance(s, dict), "a delegated service is not an object")
            admins.append((_text(a.get("Id"), "administrator Id"), _text(a.get("Name"), "administrator Name", True),
                           _text(s.get("ServicePrincipal"), "ServicePrincipal"),
                           _text(s.get("DelegationEnabledDate"), "DelegationEnabledDate", True)))
    try:
        principals = _delegation_principals(payload.get("ResourcePolicy"))
    except ValueError as exc:
        raise Malformed(f"ResourcePolicy: {exc}") from None
    return {"organization_delegated_admins": admins,
            "organization_delegation_policy": [(p,) for p in principals]}


ROWS = {"organization_features": rows_features, "organization_units": rows_units,
        "organization_policies": rows_policies, "organization_delegated_admins": rows_delegated_admins}
COLUMNS = {
    "organization_info": ("organization_id", "management_account_id", "feature_set"),
    "organization_features": ("organization_id", "feature"),
    "organization_parents": ("child_id", "child_type", "child_name", "parent_id"),
    "organization_policies": ("policy_id", "policy_type", "policy_name", "aws_managed"),
    "organization_policy_targets": ("policy_id", "target_id", "target_type", "target_name"),
    "organization_delegated_admins": ("account_id", "account_name", "service_principal", "delegation_enabled_date"),
    "organization_delegation_policy": ("principal",),
}


def prepare(store, prefix: str, snapshot_date) -> tuple[list[tuple], dict[str, list[tuple]]]:
    """(status rows, table rows) of the date's organisation data sets as stored; never raises for a
    missing, corrupt or malformed object: that data set is 'error' with the reason."""
    from iam_audit.ingest.raw_store import RawObjectMissing

    key = manifest_key(prefix, snapshot_date)
    statuses: list[tuple] = []
    tables: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
    try:
        manifest = json.loads(store.get(key))
        datasets = manifest["datasets"]
        _require(isinstance(datasets, dict) and not manifest.get("incomplete"), "manifest incomplete")
    except RawObjectMissing:
        why = (f"{store.url(key)} does not exist: the organisation data sets were not collected for this date "
               "(the discovery credentials could not list the organisation, or the snapshot predates them)")
        return [(d, "error", "NotCollected", why, None) for d in ORG_DATASETS], tables
    except (ValueError, KeyError, TypeError) as exc:
        why = f"{store.url(key)} is not a complete manifest: {exc}"
        return [(d, "error", "MalformedPayload", why, None) for d in ORG_DATASETS], tables
    collected_at = manifest.get("collected_at")
    for name in ORG_DATASETS:
        entry = datasets.get(name)
        if not isinstance(entry, dict):
            statuses.append((name, "error", "NotCollected", f"{store.url(key)} does not list {name}", collected_at))
            continue
        if entry.get("status") != "ok":
            statuses.append((name, "error", entry.get("error_code") or "Unknown", entry.get("error_message"),
                             collected_at))
            continue
        try:
            blob = store.get(entry["key"])
            if hashlib.sha256(blob).hexdigest() != entry.get("sha256"):
                raise Malformed(f"{store.url(entry['key'])} does not match the SHA-256 its manifest recorded")
            rows = ROWS[name](layout.decode(blob, store.url(entry["key"])))
        except (Malformed, layout.CorruptObjectError, RawObjectMissing, KeyError, TypeError) as exc:
            statuses.append((name, "error", "MalformedPayload", f"{name}: {exc}", collected_at))
            continue
        for table, table_rows in rows.items():
            tables[table] += table_rows
        statuses.append((name, "ok", None, None, collected_at))
    return statuses, tables


def load_organization_facts(store, prefix: str, snapshot_date, connect: Callable) -> dict[str, str]:
    """Stage the date's organisation data sets (replacing the date's rows); returns dataset -> status."""
    statuses, tables = prepare(store, prefix, snapshot_date)
    conn = connect()
    try:
        with conn.transaction(), conn.cursor() as cur:
            for table in ORG_TABLES:
                cur.execute(f"DELETE FROM iam_stage.{table} WHERE snapshot_date = %s",  # noqa: S608
                            (str(snapshot_date),))
            with cur.copy("COPY iam_stage.organization_datasets (snapshot_date, dataset, status, error_code, "
                          "error_message, collected_at) FROM STDIN") as copy:
                for row in statuses:
                    copy.write_row((str(snapshot_date), *row))
            for table, columns in COLUMNS.items():
                if not tables[table]:
                    continue
                with cur.copy(f"COPY iam_stage.{table} (snapshot_date, {', '.join(columns)}) FROM STDIN") as copy:
                    for row in dict.fromkeys(tables[table]):  # AWS never repeats one; a replayed file might
                        copy.write_row((str(snapshot_date), *row))
    finally:
        conn.close()
    result = {name: status if status == "ok" else f"{status}: {code}" for name, status, code, *_ in statuses}
    log.info("organisation data sets for %s: %s", snapshot_date, result)
    return result
