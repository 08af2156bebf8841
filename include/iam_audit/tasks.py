"""Task bodies bound to Airflow: read Variables, connections and context, call the pure modules."""

from __future__ import annotations

import logging

from iam_audit.catalogue import load_catalogue
from iam_audit.config import AuditConfig, ConfigError, build_config, read_variables
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
    from iam_audit.raw_store import S3RawStore

    config = _config(plan)
    return S3RawStore(config.bucket, aws_conn_id=aws_conn_id, kms_key_id=config.kms_key_id)


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
        _check_map_length(len(accounts))
        return accounts
    from iam_audit import layout

    target = target_from_connection(aws_conn_id)
    try:
        org_accounts = list_organization_accounts(target)
    except OrganizationsAccessDenied as exc:
        if not (plan["requested_accounts"] or plan["config"]["accounts"]):
            raise
        log.warning("%s; auditing the configured account ids without their names", exc)
        org_accounts = None
    if org_accounts is not None:
        store.put(layout.organization_key(plan["config"]["prefix"], plan["snapshot_date"]), layout.encode(org_accounts))
    accounts = discover_accounts(target, _config(plan), plan["requested_accounts"], org_accounts)
    _check_map_length(len(accounts))
    log.info("auditing %d accounts", len(accounts))
    return accounts


def _check_map_length(count: int) -> None:
    """One mapped extract task per account: say so clearly before Airflow refuses a too-long map."""
    from airflow.configuration import conf

    limit = conf.getint("core", "max_map_length")
    if count > limit:
        raise ConfigError(f"{count} accounts to audit but [core] max_map_length is {limit}: set "
                          f"AIRFLOW__CORE__MAX_MAP_LENGTH to at least {count} (one mapped task per account)")


def _replay_accounts(store, plan: dict) -> list[dict]:
    """Accounts to re-evaluate: those with a stored snapshot, plus the expected ones without (flagged, skipped)."""
    from iam_audit import layout
    from iam_audit.raw_store import RawObjectMissing

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
    if plan["mode"] == "replay":
        from airflow.sdk.exceptions import AirflowSkipException

        if account.get("missing_snapshot"):
            raise AirflowSkipException(f"account {account['account_id']}: no stored snapshot for "
                                       f"{plan['snapshot_date']}: skipped, no verdicts written")
        raise AirflowSkipException(f"replay of {plan['snapshot_date']}: data comes from the stored snapshot")
    import os
    from dataclasses import replace

    from airflow.sdk.exceptions import AirflowFailException

    from iam_audit.aws import target_from_connection
    from iam_audit.config import read_external_id

    budget = float(os.environ.get("IAM_AUDIT_CREDENTIAL_REPORT_BUDGET_SECONDS", "120"))
    config = replace(_config(plan), external_id=read_external_id())
    try:
        return extract_one(target_from_connection(aws_conn_id), config, _store(plan, aws_conn_id),
                           plan["snapshot_date"], account, plan["run_id"], poll_budget_seconds=budget)
    except PermanentExtractionError as exc:
        # A retry would re-read every data set and be refused again: fail now, the verdicts say error.
        raise AirflowFailException(str(exc)) from None


def load(plan: dict, accounts: list[dict] | None, aws_conn_id: str, postgres_conn_id: str) -> dict:
    from iam_audit.database import pipeline_hook, snapshot_date_lock

    if accounts is None:
        raise LoadError("account discovery did not finish: nothing to load")
    hook = pipeline_hook(postgres_conn_id)
    store = _store(plan, aws_conn_id)
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
        load_organization(store, plan["config"]["prefix"], plan["snapshot_date"], hook.get_conn)
        report = load_snapshot(store, plan["config"]["prefix"], plan["snapshot_date"], accounts,
                               hook.get_conn, mode=plan["mode"], run_id=plan["run_id"])
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


def _analyze(hook) -> None:
    """Fresh planner statistics on the staging tables after a bulk load: with stale ones, the checks'
    joins against a freshly loaded date are planned as if it were empty (docs/performance.md, change D).
    aws_policy_results is a view now; autovacuum keeps the history tables' statistics."""
    from iam_audit.load import STAGING_TABLES

    conn = hook.get_conn()
    try:
        conn.autocommit = True
        conn.execute("ANALYZE " + ", ".join(f"iam_stage.{t}" for t in STAGING_TABLES))
    finally:
        conn.close()


def summarize(plan: dict, accounts: list[dict] | None, postgres_conn_id: str) -> dict:
    from iam_audit.database import pipeline_hook
    from iam_audit.summary import build_summary, format_summary

    account_ids = [a["account_id"] for a in accounts or []]
    conn = pipeline_hook(postgres_conn_id).get_conn()
    try:
        summary = build_summary(conn, plan["snapshot_date"], account_ids or None)
    finally:
        conn.close()
    log.info("\n%s", format_summary(summary))
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
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from iam_audit.retention import expire_history as expire

    conn = PostgresHook(postgres_conn_id=postgres_conn_id).get_conn()
    try:
        return expire(conn, plan["snapshot_date"], plan["config"].get("retention_days"))
    finally:
        conn.close()
