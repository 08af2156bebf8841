"""Task bodies bound to Airflow: read Variables, connections and context, call the pure modules."""

from __future__ import annotations

import logging

from iam_audit.config import AuditConfig, ConfigError, build_config, read_variables
from iam_audit.evaluate.catalogue import load_catalogue
from iam_audit.pipeline import (
    LoadError,
    OrganizationsAccessDenied,
    PermanentExtractionError,
    account_set_shrink,
    account_state,
    discover_accounts,
    extract_one,
    list_organization_accounts,
    load_organization,
    load_snapshot,
    prune_other_accounts,
    run_mode,
    select_frameworks,
    stored_accounts,
)
from iam_audit.run_modes import OVERRIDE_PARAM

log = logging.getLogger(__name__)


def _config(plan: dict) -> AuditConfig:
    return AuditConfig(**plan["config"])


def _store(plan: dict, aws_conn_id: str):
    from iam_audit.ingest.raw_store import S3RawStore

    config = _config(plan)
    return S3RawStore(config.bucket, aws_conn_id=aws_conn_id, kms_key_id=config.kms_key_id,
                      expected_owner=config.bucket_owner)


def _raw_datasets(plan: dict) -> list[str]:
    """The raw data sets in S3 as lineage datasets (iam_audit.export.lineage)."""
    from iam_audit.export.lineage import all_datasets, s3_uri

    config = plan["config"]
    prefix = config.get("prefix") or "iam"
    from iam_audit.ingest.organization import ORG_DATASETS

    organisation = ["organization/accounts", "organization/account_tags", *(f"organization/{d}" for d in ORG_DATASETS)]
    return [s3_uri(config["bucket"], prefix, d) for d in [*all_datasets(), *organisation]]


def _staging_tables() -> list[str]:
    from iam_audit.ingest.load import STAGING_TABLES

    return list(STAGING_TABLES)


def _tables(postgres_conn_id: str, schema: str, tables) -> list[str]:
    from iam_audit.export.lineage import postgres_uris

    return postgres_uris(postgres_conn_id, schema, tables)


def _report_lineage(context, inputs=(), outputs=()) -> None:
    from iam_audit.export.lineage import report

    report(context, inputs, outputs)


def _no_retry_on_config_error(fn):
    """A configuration error does not go away on a retry: fail the task at once."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            class ConfigurationFailure(AirflowFailException, ConfigError):
                pass

            raise ConfigurationFailure(str(exc)) from None
    return wrapper


@_no_retry_on_config_error
def plan_run(context) -> dict:
    config = build_config(read_variables())
    params = context["params"]
    # Runs triggered without a logical date (allowed in Airflow 3) are snapshots of when they run.
    moment = context.get("logical_date") or context["dag_run"].run_after
    snapshot_date = moment.date()
    mode = run_mode(params.get("mode", "auto"), snapshot_date,
                    overwrite_past_snapshot=bool(params.get(OVERRIDE_PARAM, False)))
    frameworks = select_frameworks(params.get("frameworks"), load_catalogue().frameworks)
    from iam_audit.config import parse_account_ids

    requested = None
    if params.get("accounts"):
        requested, _ = parse_account_ids(list(params["accounts"]), source="param accounts")
    plan = {
        "snapshot_date": snapshot_date.isoformat(),
        "run_id": context["run_id"],
        "mode": mode,
        "frameworks": frameworks,
        "requested_accounts": list(requested) if requested else None,
        # configuration risks the operator accepted: logged above and shown in the run's report
        "warnings": list(config.warnings),
        # what the check SQL binds, and nothing else: operators render and log their parameters
        "check_params": {"snapshot_date": snapshot_date.isoformat(), "run_id": context["run_id"],
                         "frameworks": frameworks},
        "config": {
            # never the external id: the plan is an XCom; extract reads it from its Variable
            "bucket": config.bucket, "role_name": config.role_name, "role_path": config.role_path,
            "accounts": list(config.accounts) if config.accounts else None,
            "kms_key_id": config.kms_key_id, "prefix": config.prefix,
            "max_account_drop_percent": config.max_account_drop_percent,
            "retention_days": config.retention_days,
            "accounts_per_task": config.accounts_per_task,
            "securityhub_region": config.securityhub_region,
            "bucket_owner": config.bucket_owner,
            "allow_unhashed_manifests": config.allow_unhashed_manifests,
        },
    }
    log.info("snapshot %s, mode %s, frameworks %s, bucket %s", plan["snapshot_date"], mode,
             ", ".join(frameworks), config.bucket)
    return plan


def prepare_database(postgres_conn_id: str) -> list[str]:
    from iam_audit.database import apply_schema, pipeline_hook

    conn = pipeline_hook(postgres_conn_id).get_conn()
    try:
        return apply_schema(conn)
    finally:
        conn.close()


@_no_retry_on_config_error
def discover(plan: dict, aws_conn_id: str) -> list[dict]:
    from iam_audit.aws import target_from_connection

    store = _store(plan, aws_conn_id)
    unreadable = store.check_readable(plan["config"]["prefix"])
    if unreadable:
        raise ConfigError(f"Variable iam_audit_bucket names bucket {store.bucket!r}: {unreadable}")
    if plan["mode"] == "replay":
        accounts = _replay_accounts(store, plan)
        _check_map_length(len(accounts), _per_task(plan))
        return accounts
    from iam_audit.ingest import layout
    from iam_audit.ingest.load import sha256

    target = target_from_connection(aws_conn_id)
    try:
        org_accounts = list_organization_accounts(target)
    except OrganizationsAccessDenied as exc:
        if not (plan["requested_accounts"] or plan["config"]["accounts"]):
            raise
        log.warning("%s; auditing the configured account ids without their names", exc)
        org_accounts = None
    org_sha256 = None
    if org_accounts is not None:
        blob = layout.encode(org_accounts)
        store.put(layout.organization_key(plan["config"]["prefix"], plan["snapshot_date"]), blob)
        org_sha256 = sha256(blob)
        from iam_audit.ingest.account_tags import store_account_tags

        store_account_tags(target, store, plan["config"]["prefix"], plan["snapshot_date"], org_accounts)
    _collect_organization_facts(target, store, plan)
    accounts = discover_accounts(target, _config(plan), plan["requested_accounts"], org_accounts)
    if org_sha256:
        # each account's manifest records it, so the organisation list is covered like the data sets
        accounts = [{**a, "organization_sha256": org_sha256} for a in accounts]
    _check_map_length(len(accounts), _per_task(plan))
    log.info("auditing %d accounts", len(accounts))
    return accounts


def _collect_organization_facts(target, store, plan: dict) -> None:
    """The organisation-level data sets (centralised root access, SCPs/RCPs, OU tree, delegated
    administrators), once per run; a refused call makes its data set 'error', never the run."""
    from iam_audit.ingest.organization import collect_and_store

    collect_and_store(target, store, plan["config"]["prefix"], plan["snapshot_date"], plan.get("run_id"))


def _per_task(plan: dict) -> int:
    return int(plan["config"].get("accounts_per_task") or 1)


def _check_map_length(count: int, per_task: int = 1) -> None:
    """One mapped extract task per `per_task` accounts: say so clearly before Airflow refuses a too-long map."""
    from airflow.configuration import conf

    limit = conf.getint("core", "max_map_length")
    mapped = -(-count // per_task)
    if mapped > limit:
        raise ConfigError(
            f"{count} accounts to audit need {mapped} mapped extract tasks ({per_task} account(s) per task, "
            f"Variable iam_audit_accounts_per_task) but [core] max_map_length is {limit}: set "
            f"AIRFLOW__CORE__MAX_MAP_LENGTH to at least {mapped}, or set iam_audit_accounts_per_task to at "
            f"least {-(-count // limit)}")


def batch_accounts(plan: dict, accounts: list[dict]) -> list[list[dict]]:
    """The accounts of each mapped extract task, in discovery order (one each by default)."""
    size = _per_task(plan)
    return [accounts[i:i + size] for i in range(0, len(accounts), size)]


def batch_label(accounts: list[dict]) -> str:
    """The grid's name of a mapped extract task (its rendered map index, at most 250 characters)."""
    if len(accounts) == 1:
        account = accounts[0]
        return f"{account['account_id']} {account.get('account_name') or ''}".strip()
    ids = ", ".join(a["account_id"] for a in accounts)
    if len(ids) > 200:
        ids = f"{accounts[0]['account_id']} ... {accounts[-1]['account_id']}"
    return f"{len(accounts)} accounts: {ids}"


def _replay_accounts(store, plan: dict) -> list[dict]:
    """Accounts to re-evaluate: those with a stored snapshot, plus the expected ones without (flagged, skipped)."""
    from iam_audit.ingest import layout
    from iam_audit.ingest.raw_store import RawObjectMissing

    prefix, snapshot_date = plan["config"]["prefix"], plan["snapshot_date"]
    stored = {a["account_id"]: a for a in stored_accounts(store, prefix, snapshot_date)}
    expected = set(plan["requested_accounts"] or plan["config"]["accounts"] or [])
    names = {}
    if not expected:
        key = layout.organization_key(prefix, snapshot_date)
        try:
            organisation = layout.decode(store.get(key), store.url(key))
            expected = {a["Id"] for a in organisation if account_state(a) == "ACTIVE"}
            names = {a["Id"]: a.get("Name") or "" for a in organisation}
        except RawObjectMissing:
            expected = set(stored)
    accounts = []
    for account_id in sorted(expected | (set(stored) if not plan["requested_accounts"] else set())):
        name = names.get(account_id, "")
        if account_id in stored:
            accounts.append({"account_id": account_id, "account_name": name})
        else:
            log.warning("account %s: no stored snapshot for %s: skipped, no verdicts written",
                        account_id, snapshot_date)
            accounts.append({"account_id": account_id, "account_name": name, "missing_snapshot": True})
    found = sum(not a.get("missing_snapshot") for a in accounts)
    log.info("replay of %s: %d of %d accounts have a stored snapshot", snapshot_date, found, len(accounts))
    if not found:
        from airflow.sdk.exceptions import AirflowFailException

        # Nothing to re-evaluate must not look like a successful run (no retry: S3 will not change).
        raise AirflowFailException(
            f"replay of {snapshot_date}: nothing to replay, no stored snapshot under "
            f"s3://{store.bucket}/{prefix}/snapshot_date={snapshot_date}/"
            + (f" for any of the {len(accounts)} expected account(s)" if accounts else "")
            + ". Only dates audited live can be replayed; "
            "check Variable iam_audit_bucket if this date was audited.")
    return accounts


def extract(plan: dict, account: dict, aws_conn_id: str) -> dict:
    """Extract one account: the batch of one (see extract_batch)."""
    return extract_batch(plan, [account], aws_conn_id)


class BatchExtractionError(RuntimeError):
    """Some accounts of a batch failed for reasons a retry may fix; the retry re-extracts only those."""


BATCH_THREADS = 4


def extract_batch(plan: dict, accounts: list[dict], aws_conn_id: str, first_try: bool = True) -> dict:
    """Extract the accounts of one mapped task (one by default), each into its own snapshot and
    manifest with its failure recorded there, BATCH_THREADS at a time.

    One account's failure neither stops nor fails the others: they are stored, loaded and checked;
    the task fails at the end naming every failed account and why (the loader turns each into 'error'
    verdicts). Only permanent failures: not retried. Any transient one: retried, and a retry (or a
    cleared task) of the same run skips the accounts this run already stored complete.
    XCom: a batch of one gives its account's summary (extract_one), a larger batch its counts."""
    from airflow.sdk.exceptions import AirflowFailException

    if plan["mode"] == "replay":
        _skip_replay(plan, accounts)
    store = _store(plan, aws_conn_id)
    _report_lineage(store, outputs=lambda: _raw_datasets(plan))
    done = {} if first_try else {a["account_id"]: s for a in accounts
                                 if (s := _stored_summary(store, plan, a["account_id"]))}
    todo = [a for a in accounts if a["account_id"] not in done]
    if done:
        log.info("%d of %d accounts of this task were stored complete by this run already; extracting %s",
                 len(done), len(accounts), ", ".join(a["account_id"] for a in todo) or "none")
    extracted, failed = _extract_accounts(plan, todo, store, aws_conn_id)
    if len(accounts) == 1:
        # the batch of one fails with its account's own error, and its XCom is that account's summary
        for exc in failed.values():
            if isinstance(exc, PermanentExtractionError):
                # A retry would re-read every data set and be refused again: fail now, the verdicts say error.
                raise AirflowFailException(str(exc)) from None
            raise exc
        return {**done, **extracted}[accounts[0]["account_id"]]
    if failed:
        reasons = {a: str(e) if isinstance(e, PermanentExtractionError) else f"{type(e).__name__}: {e}"
                   for a, e in failed.items()}
        message = (f"{len(failed)} of {len(accounts)} accounts of this batch could not be fully extracted; "
                   f"the other {len(accounts) - len(failed)} are stored, loaded and checked, these get 'error' "
                   "verdicts:\n" + "\n".join(f"  {why}" for _, why in sorted(reasons.items())))
        if not all(isinstance(e, PermanentExtractionError) for e in failed.values()):
            raise BatchExtractionError(message + "\nA retry extracts again only the accounts not stored complete.")
        raise AirflowFailException(message)
    return {"accounts": len(accounts), "extracted": len(todo)}


def _skip_replay(plan: dict, accounts: list[dict]) -> None:
    """Replay reads the stored snapshots: nothing to extract; name the accounts that have none."""
    from airflow.sdk.exceptions import AirflowSkipException

    snapshot_date = plan["snapshot_date"]
    reasons = [f"account {a['account_id']}: no stored snapshot for {snapshot_date}: skipped, no verdicts written"
               for a in accounts if a.get("missing_snapshot")]
    if len(reasons) < len(accounts):
        reasons.insert(0, f"replay of {snapshot_date}: data comes from the stored snapshot")
    raise AirflowSkipException("; ".join(reasons))


def _extract_accounts(plan: dict, accounts: list[dict], store, aws_conn_id: str
                      ) -> tuple[dict[str, dict], dict[str, Exception]]:
    """extract_one for each account (in threads when there are several): the summaries of those
    extracted and the exception of each that failed."""
    if not accounts:
        return {}, {}
    import os
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    from iam_audit.aws import target_from_connection
    from iam_audit.config import read_external_id

    budget = float(os.environ.get("IAM_AUDIT_CREDENTIAL_REPORT_BUDGET_SECONDS", "120"))
    config = replace(_config(plan), external_id=read_external_id())
    target = target_from_connection(aws_conn_id)
    extracted: dict[str, dict] = {}
    failed: dict[str, Exception] = {}

    def one(account: dict) -> None:
        try:
            extracted[account["account_id"]] = extract_one(
                target, config, store, plan["snapshot_date"], account, plan["run_id"], poll_budget_seconds=budget)
        except PermanentExtractionError as exc:
            failed[account["account_id"]] = exc
        except Exception as exc:  # noqa: BLE001 - one account's failure must not stop the others
            log.warning("account %s: %s: %s", account["account_id"], type(exc).__name__, exc)
            failed[account["account_id"]] = exc

    if len(accounts) == 1:
        one(accounts[0])
    else:
        with ThreadPoolExecutor(max_workers=min(BATCH_THREADS, len(accounts))) as pool:
            list(pool.map(one, accounts))
    return extracted, failed


def _stored_summary(store, plan: dict, account_id: str) -> dict | None:
    """The account's summary (as extract_one gives it) when this run already stored it with every data
    set (its manifest says so); None otherwise."""
    import json

    from iam_audit.ingest import layout
    from iam_audit.ingest.raw_store import RawObjectMissing

    key = layout.manifest_key(plan["config"]["prefix"], plan["snapshot_date"], account_id)
    try:
        manifest = json.loads(store.get(key))
    except (RawObjectMissing, ValueError):
        return None
    datasets = manifest.get("datasets") or {}
    if (manifest.get("incomplete") or manifest.get("run_id") != plan["run_id"] or not datasets
            or any(d.get("status") != "ok" for d in datasets.values())):
        return None
    return {"account_id": account_id, "manifest_key": key, "datasets_ok": len(datasets), "datasets_failed": []}


def load(plan: dict, accounts: list[dict] | None, aws_conn_id: str, postgres_conn_id: str) -> dict:
    from iam_audit.database import pipeline_hook, snapshot_date_lock

    if accounts is None:
        raise LoadError("account discovery did not finish: nothing to load")
    hook = pipeline_hook(postgres_conn_id)
    store = _store(plan, aws_conn_id)
    _report_lineage(hook, inputs=lambda: _raw_datasets(plan),
                    outputs=lambda: _tables(postgres_conn_id, "iam_stage", _staging_tables()))
    # Another run of the same date (scheduler, make run, a backfill) must not write in between.
    with snapshot_date_lock(hook.get_conn, plan["snapshot_date"]):
        shrink = None
        if plan["mode"] == "live" and not plan["requested_accounts"]:
            keep = [a["account_id"] for a in accounts]
            max_drop = plan["config"].get("max_account_drop_percent", 100.0)
            shrink = account_set_shrink(plan["snapshot_date"], keep, hook.get_conn, max_drop)
            if shrink:
                log.error("%s", shrink.message(max_drop))  # loaded below, failed at the end, nothing pruned
            else:
                prune_other_accounts(plan["snapshot_date"], keep, hook.get_conn)
        from iam_audit.ingest.account_tags import load_account_tags

        _load_organization_facts(store, plan, hook)
        # after the organisation's data sets, which replace the date's organization_datasets rows
        load_account_tags(store, plan["config"]["prefix"], plan["snapshot_date"], hook.get_conn)
        report = load_snapshot(store, plan["config"]["prefix"], plan["snapshot_date"], accounts,
                               hook.get_conn, mode=plan["mode"], run_id=plan["run_id"],
                               allow_unhashed=bool(plan["config"].get("allow_unhashed_manifests")))
        # after the accounts: their manifests record the organisation list's SHA-256
        load_organization(store, plan["config"]["prefix"], plan["snapshot_date"], hook.get_conn,
                          mode=plan["mode"], manifest_hashes=report.organization_sha256, run_id=plan["run_id"])
    _analyze(hook)
    if report.failed:
        raise LoadError(
            f"{len(report.failed)} account(s) could not be loaded; every check writes 'error' verdicts for "
            f"them for {plan['snapshot_date']}, the other accounts were loaded and checked:\n"
            + "\n".join(f"  {a}: {why}" for a, why in sorted(report.failed.items()))
        )
    if shrink:
        from airflow.sdk.exceptions import AirflowFailException

        # not retried: the same discovery gives the same set; the checks still run on what was loaded
        raise AirflowFailException(shrink.message(plan["config"]["max_account_drop_percent"]))
    return {"loaded": len(report.loaded), "missing": sorted(report.missing), "rows": sum(report.loaded.values())}


def _load_organization_facts(store, plan: dict, hook) -> None:
    from iam_audit.ingest.organization import load_organization_facts

    load_organization_facts(store, plan["config"]["prefix"], plan["snapshot_date"], hook.get_conn)


def _analyze(hook) -> None:
    """Fresh planner statistics on the staging tables after a bulk load: with stale ones, the checks'
    joins against a freshly loaded date are planned as if it were empty (docs/performance.md, change D).
    aws_policy_results is a view now; autovacuum keeps the history tables' statistics."""
    from iam_audit.ingest.load import STAGING_TABLES

    conn = hook.get_conn()
    try:
        conn.autocommit = True
        conn.execute("ANALYZE " + ", ".join(f"iam_stage.{t}" for t in STAGING_TABLES))
    finally:
        conn.close()


def summarize(plan: dict, accounts: list[dict] | None, postgres_conn_id: str, alerts: dict | None = None) -> dict:
    from iam_audit.database import pipeline_hook
    from iam_audit.reporting.summary import build_summary, format_summary

    account_ids = [a["account_id"] for a in accounts or []]
    hook = pipeline_hook(postgres_conn_id)
    _report_lineage(hook, inputs=lambda: _tables(postgres_conn_id, "public", ["aws_policy_results"]))
    conn = hook.get_conn()
    try:
        summary = build_summary(conn, plan["snapshot_date"], account_ids or None)
    finally:
        conn.close()
    log.info("\n%s", format_summary(summary))
    from iam_audit.alerting.alerts import summary_line

    log.info("%s", summary_line(alerts))
    incomplete = sorted({e["account_id"] for e in summary.extraction_errors})
    if plan["mode"] == "live" and incomplete:
        from airflow.sdk.exceptions import AirflowFailException

        # Not retried: the verdicts are written; a retry would find the same errors 60 s later.
        raise AirflowFailException(
            f"{len(incomplete)} account(s) could not be fully audited: {', '.join(incomplete)}; "
            "their affected controls are 'error' in aws_policy_results"
        )
    return {"snapshot_date": plan["snapshot_date"], **summary.totals, "accounts": len(summary.accounts)}


def expire_history(plan: dict, postgres_conn_id: str) -> dict:
    from iam_audit.database import pipeline_hook
    from iam_audit.evaluate.retention import expire_history as expire

    # the pipeline's session timeouts, and each expired day's lock (a backfill may be writing it)
    hook = pipeline_hook(postgres_conn_id)
    conn = hook.get_conn()
    try:
        return expire(conn, plan["snapshot_date"], plan["config"].get("retention_days"), connect=hook.get_conn)
    finally:
        conn.close()
