"""Every task body of the aws_iam_cis DAG: the one module that touches Airflow (Variables, connections,
the task context, hooks, Airflow's exceptions), in the order a run goes.

    plan_run            the RunPlan (iam_audit.plan), from the Variables and the trigger's params
    prepare_database    iam_audit.database: schema, views, catalogue
    discover_accounts   iam_audit.ingest.discover
    extract_account     iam_audit.ingest.extract_accounts (ingest.extract, ingest.snapshot, ingest.raw_store)
    load_staging        iam_audit.ingest.staging (ingest.load, ingest.transform)
    check_<logic>       CheckOperator below, one per logic of iam_audit.evaluate.catalogue (sql/checks)
    send_alerts         iam_audit.alerting.alerts
    summarize           iam_audit.reporting.summary
    publish_report      iam_audit.reporting.report, reporting.publish
    export_*, send_to_securityhub, build_evidence_pack    iam_audit.export
    expire_history      iam_audit.evaluate.retention

Each task gets the plan as plan_run's XCom and reads it back as a RunPlan (RunPlan.from_xcom); the stage
modules never import Airflow at module level, nor this module. Stage imports sit inside the bodies so that
parsing the DAG (iam_audit.dag) does not import the AWS and database clients.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

from iam_audit.config import ConfigError, build_config, parse_account_ids, read_variables
from iam_audit.database import session_options as session_options  # the check tasks' session settings
from iam_audit.evaluate.catalogue import load_catalogue
from iam_audit.notify import on_run_failure as on_run_failure  # the DAG's on_failure_callback
from iam_audit.paths import SQL_DIR as SQL_DIR  # the check tasks' template_searchpath
from iam_audit.plan import PlanError, RunPlan, select_frameworks
from iam_audit.run_modes import AUTO_RULE as AUTO_RULE
from iam_audit.run_modes import OVERRIDE_HELP as OVERRIDE_HELP
from iam_audit.run_modes import OVERRIDE_PARAM, run_mode

log = logging.getLogger(__name__)

# ---- how the bodies meet Airflow ------------------------------------------------------

def _no_retry_on_config_error(fn):
    """A configuration error does not go away on a retry: fail the task at once."""
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


def _with_plan(fn):
    """The body's first argument arrives as plan_run's XCom (a dict) and is handed on as a RunPlan.
    An XCom that is not a plan (written by another version of the package mid-run, or edited) fails the
    task at once: a retry reads the same XCom."""
    @functools.wraps(fn)
    def wrapper(plan, *args, **kwargs):
        try:
            plan = RunPlan.from_xcom(plan)
        except PlanError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"the run's plan (XCom of plan_run) is unusable: {exc}") from None
        return fn(plan, *args, **kwargs)
    return wrapper


def _store(plan: RunPlan, aws_conn_id: str):
    from iam_audit.ingest.raw_store import S3RawStore

    config = plan.config
    return S3RawStore(config.bucket, aws_conn_id=aws_conn_id, kms_key_id=config.kms_key_id,
                      expected_owner=config.bucket_owner)


def _lineage(context, inputs=(), outputs=()) -> None:
    """What the task read and wrote, for OpenLineage (iam_audit.export.lineage)."""
    from iam_audit.export.lineage import report

    report(context, inputs, outputs)


def _raw_datasets(plan: RunPlan) -> list[str]:
    """The raw data sets in S3 as lineage datasets (iam_audit.export.lineage)."""
    from iam_audit.export.lineage import all_datasets, s3_uri
    from iam_audit.ingest.organization import ORG_DATASETS

    organisation = ["organization/accounts", "organization/account_tags", *(f"organization/{d}" for d in ORG_DATASETS)]
    return [s3_uri(plan.config.bucket, plan.config.prefix, d) for d in [*all_datasets(), *organisation]]


def _tables(postgres_conn_id: str, schema: str, tables) -> list[str]:
    from iam_audit.export.lineage import postgres_uris

    return postgres_uris(postgres_conn_id, schema, tables)


def _results_to_s3(hook, postgres_conn_id: str, plan: RunPlan, output: str) -> None:
    """aws_policy_results -> s3://<bucket>/<prefix>/<output>, for OpenLineage."""
    from iam_audit.export.lineage import RESULTS, postgres_uri, s3_uri

    _lineage(hook, inputs=lambda: [postgres_uri(postgres_conn_id, "public", RESULTS)],
             outputs=lambda: [s3_uri(plan.config.bucket, plan.config.prefix, output)])


# ---- plan_run, prepare_database ------------------------------------------------------

@_no_retry_on_config_error
def plan_run(context) -> dict:
    """Validate Variables and params before any AWS call; decide live or replay. Returns the plan's XCom."""
    config = build_config(read_variables())
    params = context["params"]
    # Runs triggered without a logical date (allowed in Airflow 3) are snapshots of when they run.
    moment = context.get("logical_date") or context["dag_run"].run_after
    snapshot_date = moment.date()
    mode = run_mode(params.get("mode", "auto"), snapshot_date,
                    overwrite_past_snapshot=bool(params.get(OVERRIDE_PARAM, False)))
    frameworks = select_frameworks(params.get("frameworks"), load_catalogue().frameworks)
    requested = None
    if params.get("accounts"):
        requested, _ = parse_account_ids(list(params["accounts"]), source="param accounts")
    plan = RunPlan(snapshot_date=snapshot_date, run_id=context["run_id"], mode=mode, config=config,
                   frameworks=tuple(frameworks), requested_accounts=requested, warnings=config.warnings)
    log.info("snapshot %s, mode %s, frameworks %s, bucket %s", snapshot_date, mode,
             ", ".join(frameworks), config.bucket)
    # never the external id: the plan is an XCom; extract reads it from its Variable
    return plan.to_xcom()


def prepare_database(postgres_conn_id: str) -> list[str]:
    from iam_audit.database import apply_schema, pipeline_hook

    conn = pipeline_hook(postgres_conn_id).get_conn()
    try:
        return apply_schema(conn)
    finally:
        conn.close()


# ---- discover_accounts, batch_accounts --------------------------------------------------

@_no_retry_on_config_error
@_with_plan
def discover(plan: RunPlan, aws_conn_id: str) -> list[dict]:
    from iam_audit.aws import target_from_connection
    from iam_audit.ingest import discover as accounts_of
    from iam_audit.ingest import layout
    from iam_audit.ingest.load import sha256

    store = _store(plan, aws_conn_id)
    prefix = plan.config.prefix
    unreadable = store.check_readable(prefix)
    if unreadable:
        raise ConfigError(f"Variable iam_audit_bucket names bucket {store.bucket!r}: {unreadable}")
    if plan.mode == "replay":
        try:
            accounts = accounts_of.replay_accounts(store, prefix, plan.snapshot_date,
                                                   plan.requested_accounts or plan.config.accounts,
                                                   only_expected=bool(plan.requested_accounts))
        except accounts_of.NothingToReplay as exc:
            from airflow.sdk.exceptions import AirflowFailException

            # Nothing to re-evaluate must not look like a successful run (no retry: S3 will not change).
            raise AirflowFailException(str(exc)) from None
        _check_map_length(len(accounts), plan.config.accounts_per_task)
        return accounts

    target = target_from_connection(aws_conn_id)
    try:
        org_accounts = accounts_of.list_organization_accounts(target)
    except accounts_of.OrganizationsAccessDenied as exc:
        if not (plan.requested_accounts or plan.config.accounts):
            raise
        log.warning("%s; auditing the configured account ids without their names", exc)
        org_accounts = None
    org_sha256 = None
    if org_accounts is not None:
        from iam_audit.ingest.account_tags import store_account_tags

        blob = layout.encode(org_accounts)
        store.put(layout.organization_key(prefix, plan.snapshot_date), blob)
        org_sha256 = sha256(blob)
        store_account_tags(target, store, prefix, plan.snapshot_date, org_accounts)
    # The organisation-level data sets (centralised root access, SCPs/RCPs, OU tree, delegated
    # administrators), once per run; a refused call makes its data set 'error', never the run.
    from iam_audit.ingest.organization import collect_and_store

    collect_and_store(target, store, prefix, plan.snapshot_date, plan.run_id)
    accounts = accounts_of.discover_accounts(target, plan.config, plan.requested_accounts, org_accounts)
    if org_sha256:
        # each account's manifest records it, so the organisation list is covered like the data sets
        accounts = [{**a, "organization_sha256": org_sha256} for a in accounts]
    _check_map_length(len(accounts), plan.config.accounts_per_task)
    log.info("auditing %d accounts", len(accounts))
    return accounts


def _check_map_length(count: int, per_task: int = 1) -> None:
    """One mapped extract task per `per_task` accounts: say so clearly before Airflow refuses a too-long map."""
    from airflow.configuration import conf

    per_task = per_task or 1
    limit = conf.getint("core", "max_map_length")
    mapped = -(-count // per_task)
    if mapped > limit:
        raise ConfigError(
            f"{count} accounts to audit need {mapped} mapped extract tasks ({per_task} account(s) per task, "
            f"Variable iam_audit_accounts_per_task) but [core] max_map_length is {limit}: set "
            f"AIRFLOW__CORE__MAX_MAP_LENGTH to at least {mapped}, or set iam_audit_accounts_per_task to at "
            f"least {-(-count // limit)}")


@_with_plan
def batch_accounts(plan: RunPlan, accounts: list[dict]) -> list[list[dict]]:
    """The accounts of each mapped extract task, in discovery order (one each by default)."""
    size = plan.config.accounts_per_task or 1
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


# ---- extract_account -------------------------------------------------------------------

class BatchExtractionError(RuntimeError):
    """Some accounts of a batch failed for reasons a retry may fix; the retry re-extracts only those."""


def extract(plan: RunPlan | dict, account: dict, aws_conn_id: str) -> dict:
    """Extract one account: the batch of one (see extract_batch)."""
    return extract_batch(plan, [account], aws_conn_id)


@_with_plan
def extract_batch(plan: RunPlan, accounts: list[dict], aws_conn_id: str, first_try: bool = True) -> dict:
    """Extract the accounts of one mapped task (one by default), each into its own snapshot and
    manifest with its failure recorded there, ingest.extract_accounts.BATCH_THREADS at a time.

    One account's failure neither stops nor fails the others: they are stored, loaded and checked;
    the task fails at the end naming every failed account and why (the loader turns each into 'error'
    verdicts). Only permanent failures: not retried. Any transient one: retried, and a retry (or a
    cleared task) of the same run skips the accounts this run already stored complete.
    XCom: a batch of one gives its account's summary (extract_one), a larger batch its counts."""
    from airflow.sdk.exceptions import AirflowFailException

    from iam_audit.ingest.extract_accounts import PermanentExtractionError, stored_summary

    if plan.mode == "replay":
        _skip_replay(plan, accounts)
    store = _store(plan, aws_conn_id)
    _lineage(store, outputs=lambda: _raw_datasets(plan))
    done = {} if first_try else {
        a["account_id"]: s for a in accounts
        if (s := stored_summary(store, plan.config.prefix, plan.snapshot_date, a["account_id"], plan.run_id))}
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


def _skip_replay(plan: RunPlan, accounts: list[dict]) -> None:
    """Replay reads the stored snapshots: nothing to extract; name the accounts that have none."""
    from airflow.sdk.exceptions import AirflowSkipException

    snapshot_date = plan.snapshot_date
    reasons = [f"account {a['account_id']}: no stored snapshot for {snapshot_date}: skipped, no verdicts written"
               for a in accounts if a.get("missing_snapshot")]
    if len(reasons) < len(accounts):
        reasons.insert(0, f"replay of {snapshot_date}: data comes from the stored snapshot")
    raise AirflowSkipException("; ".join(reasons))


def _extract_accounts(plan: RunPlan, accounts: list[dict], store, aws_conn_id: str
                      ) -> tuple[dict[str, dict], dict[str, Exception]]:
    """The connection's credentials and the external id (read here, never from the plan) around
    ingest.extract_accounts."""
    if not accounts:
        return {}, {}
    from dataclasses import replace

    from iam_audit.aws import target_from_connection
    from iam_audit.config import read_external_id
    from iam_audit.ingest.extract_accounts import extract_accounts

    budget = float(os.environ.get("IAM_AUDIT_CREDENTIAL_REPORT_BUDGET_SECONDS", "120"))
    config = replace(plan.config, external_id=read_external_id())
    return extract_accounts(target_from_connection(aws_conn_id), config, store, plan.snapshot_date, accounts,
                            plan.run_id, poll_budget_seconds=budget)


# ---- load_staging ------------------------------------------------------------------------

@_with_plan
def load(plan: RunPlan, accounts: list[dict] | None, aws_conn_id: str, postgres_conn_id: str) -> dict:
    from iam_audit.database import pipeline_hook
    from iam_audit.ingest.load import STAGING_TABLES
    from iam_audit.ingest.staging import LoadError, load_date

    if accounts is None:
        raise LoadError("account discovery did not finish: nothing to load")
    hook = pipeline_hook(postgres_conn_id)
    store = _store(plan, aws_conn_id)
    _lineage(hook, inputs=lambda: _raw_datasets(plan),
             outputs=lambda: _tables(postgres_conn_id, "iam_stage", list(STAGING_TABLES)))
    max_drop = plan.config.max_account_drop_percent
    report, shrink = load_date(store, plan.config.prefix, plan.snapshot_date, accounts, hook.get_conn,
                               mode=plan.mode, run_id=plan.run_id,
                               full_run=plan.mode == "live" and not plan.requested_accounts,
                               max_account_drop_percent=max_drop,
                               allow_unhashed=plan.config.allow_unhashed_manifests)
    if report.failed:
        raise LoadError(
            f"{len(report.failed)} account(s) could not be loaded; every check writes 'error' verdicts for "
            f"them for {plan.snapshot_date}, the other accounts were loaded and checked:\n"
            + "\n".join(f"  {a}: {why}" for a, why in sorted(report.failed.items()))
        )
    if shrink:
        from airflow.sdk.exceptions import AirflowFailException

        # not retried: the same discovery gives the same set; the checks still run on what was loaded
        raise AirflowFailException(shrink.message(max_drop))
    return {"loaded": len(report.loaded), "missing": sorted(report.missing), "rows": sum(report.loaded.values())}


# ---- check_<logic> ---------------------------------------------------------------------------

class CheckOperator(SQLExecuteQueryOperator):
    """One check_<logic> task. Runs exactly as SQLExecuteQueryOperator; for OpenLineage it names what
    the check reads and writes (iam_audit.export.lineage.check_lineage): the staging tables of the data sets
    it needs, and the verdict history. SQL parsing alone cannot tell, since every check writes through
    sql/macros/check.sql's temporary tables and a stored procedure."""

    def __init__(self, *, needs: Sequence[str] = (), **kwargs):
        super().__init__(**kwargs)
        self.needs = tuple(needs)

    def get_openlineage_facets_on_complete(self, task_instance):
        from airflow.providers.openlineage.extractors import OperatorLineage

        from iam_audit.export.lineage import check_lineage

        try:
            base = super().get_openlineage_facets_on_complete(task_instance)
        except Exception:  # noqa: BLE001 - the SQL facets are a bonus; the datasets below are the point
            base = None
        inputs, outputs = check_lineage(self.conn_id, self.needs)
        return OperatorLineage(inputs=inputs, outputs=outputs,
                               run_facets=getattr(base, "run_facets", {}) or {},
                               job_facets=getattr(base, "job_facets", {}) or {})


# ---- send_alerts -------------------------------------------------------------------------------

class AlertsFailed(RuntimeError):
    """A rule was refused or a channel did not accept its alerts (they stay unsent in the ledger)."""


def _connection_exists(conn_id: str) -> bool:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
        return True
    except AirflowNotFoundException:
        return False


@_with_plan
def send_alerts(plan: RunPlan, postgres_conn_id: str) -> dict:
    """Evaluate the alert rules for the run's snapshot, record new alerts, deliver every unsent one.

    A replay (backfill, re-evaluation of a past date) sends nothing: its changes were current on that date.
    With none of the alert connections defined, alerting is off (a warning, no ledger rows)."""
    from iam_audit.alerting import alerts

    snapshot_date = plan.snapshot_date.isoformat()
    if plan.mode == "replay":
        log.info("replay of %s: alert rules are not evaluated and nothing is sent", snapshot_date)
        return {"mode": "replay", "sent": {}}
    channels = alerts.configured_channels(_connection_exists)
    if not channels:
        log.warning("alerting is off: define at least one of the connections %s (see docs/alerts.md)",
                    ", ".join(alerts.DEFAULT_CONNECTIONS.values()))
        return {"configured": False, "sent": {}}
    from airflow.configuration import conf
    from airflow.sdk import Variable

    from iam_audit.custom import resolve_path
    from iam_audit.database import pipeline_hook

    # the folder of the custom controls too: environment, [iam_audit] custom_path, then the Variable
    rules, refused = alerts.load_rules(alerts.rule_dirs(resolve_path()))
    for error in refused:
        log.error("alert rule refused: %s", error)
    conn = pipeline_hook(postgres_conn_id).get_conn()
    try:
        routes = alerts.parse_routes(Variable.get(alerts.VAR_ROUTES, default=None),
                                     Variable.get(alerts.VAR_DEFAULT, default=None), alerts.account_tags(conn),
                                     alerts.account_ancestors(conn))
        result = alerts.run_alerts(conn, rules, routes, snapshot_date, plan.run_id,
                                   conf.get("api", "base_url", fallback="http://localhost:8080"),
                                   timeout=os.environ.get("IAM_AUDIT_ALERT_RULE_TIMEOUT", "60s"))
    finally:
        conn.close()
    result.rule_errors = [str(e) for e in refused] + result.rule_errors
    log.info("alerts of %s (channels configured: %s)\n%s", snapshot_date, ", ".join(channels), result.report())
    if result.rule_errors or result.failures:
        raise AlertsFailed(
            "alerting did not complete; the other rules and channels did. "
            + "; ".join([f"rule refused: {e}" for e in result.rule_errors]
                        + [f"not delivered (kept unsent in aws_policy_alert_ledger, the next run or a retry "
                           f"sends it): {f}" for f in result.failures]))
    return result.summary()


# ---- summarize -----------------------------------------------------------------------------------

@_with_plan
def summarize(plan: RunPlan, accounts: list[dict] | None, postgres_conn_id: str, alerts: dict | None = None) -> dict:
    from iam_audit.alerting.alerts import summary_line
    from iam_audit.database import pipeline_hook
    from iam_audit.reporting.summary import build_summary, format_summary

    account_ids = [a["account_id"] for a in accounts or []]
    hook = pipeline_hook(postgres_conn_id)
    _lineage(hook, inputs=lambda: _tables(postgres_conn_id, "public", ["aws_policy_results"]))
    conn = hook.get_conn()
    try:
        summary = build_summary(conn, plan.snapshot_date, account_ids or None)
    finally:
        conn.close()
    log.info("\n%s", format_summary(summary))
    log.info("%s", summary_line(alerts))
    incomplete = sorted({e["account_id"] for e in summary.extraction_errors})
    if plan.mode == "live" and incomplete:
        from airflow.sdk.exceptions import AirflowFailException

        # Not retried: the verdicts are written; a retry would find the same errors 60 s later.
        raise AirflowFailException(
            f"{len(incomplete)} account(s) could not be fully audited: {', '.join(incomplete)}; "
            "their affected controls are 'error' in aws_policy_results"
        )
    return {"snapshot_date": plan.snapshot_date.isoformat(), **summary.totals, "accounts": len(summary.accounts)}


# ---- publish_report, export_ocsf, send_to_securityhub, build_evidence_pack ------------------------

@_with_plan
def publish_report(plan: RunPlan, postgres_conn_id: str, aws_conn_id: str) -> str:
    """Render the report of the plan's snapshot date and upload it next to the snapshot; its s3:// URL."""
    from iam_audit.database import pipeline_hook
    from iam_audit.reporting.publish import REPORT_NAME, page_url, report_key, upload_html
    from iam_audit.reporting.report import build_report_html

    hook = pipeline_hook(postgres_conn_id)
    _results_to_s3(hook, postgres_conn_id, plan, REPORT_NAME)
    conn = hook.get_conn()
    try:
        html = build_report_html(conn, plan.snapshot_date.isoformat(), warnings=plan.warnings)
    finally:
        conn.close()
    store = _store(plan, aws_conn_id)
    key = report_key(plan.config.prefix, plan.snapshot_date.isoformat())
    upload_html(store, key, html)
    log.info("report of %s: %s (%d bytes); open it from the Compliance page: %s", plan.snapshot_date,
             store.url(key), len(html), page_url(plan.snapshot_date.isoformat()))
    return store.url(key)


@_with_plan
def export_ocsf(plan: RunPlan, postgres_conn_id: str, aws_conn_id: str) -> dict:
    """The snapshot's OCSF findings next to it in S3 (iam_audit.export.ocsf). A replay or backfill of a date
    rewrites its export from the stored verdicts; a failed export fails this task only (verdicts are
    already stored) and the next run of the date writes it again."""
    from iam_audit.database import pipeline_hook
    from iam_audit.export.ocsf import export_to_s3

    store = _store(plan, aws_conn_id)
    _results_to_s3(store.hook, postgres_conn_id, plan, "exports/ocsf")
    conn = pipeline_hook(postgres_conn_id).get_conn()
    try:
        url, count = export_to_s3(conn, plan.snapshot_date, store, plan.config.prefix)
    finally:
        conn.close()
    log.info("OCSF export of %s: %d findings, %s", plan.snapshot_date, count, url)
    return {"url": url, "findings": count}


@_with_plan
def send_to_securityhub(plan: RunPlan, postgres_conn_id: str, aws_conn_id: str) -> dict:
    """Changed findings to the Security Hub of Variable iam_audit_securityhub_region (unset: nothing)."""
    from iam_audit.aws import target_from_connection
    from iam_audit.database import pipeline_hook
    from iam_audit.export.securityhub import Receiver, newest_sent_date, send

    region = plan.config.securityhub_region
    if not region:
        log.info("Security Hub export is off (Variable iam_audit_securityhub_region is not set)")
        return {"enabled": False}
    snapshot_date = plan.snapshot_date
    hook = pipeline_hook(postgres_conn_id)
    conn, ledger_conn = hook.get_conn(), hook.get_conn()
    ledger_conn.autocommit = True
    try:
        newest = newest_sent_date(conn)
        if newest and snapshot_date < newest:
            log.info("Security Hub already holds %s; %s is older and is not sent (it would turn findings back)",
                     newest, snapshot_date)
            return {"enabled": True, "sent": 0, "skipped": f"older than {newest}"}
        target = target_from_connection(aws_conn_id)
        arn = target.client("sts").get_caller_identity()["Arn"]
        receiver = Receiver(account_id=arn.split(":")[4], region=region, partition=arn.split(":")[1])
        result = send(conn, ledger_conn, target.client("securityhub", region_name=region), snapshot_date,
                      receiver, plan.run_id)
    finally:
        conn.close()
        ledger_conn.close()
    return {"enabled": True, "changed": result.changed, "sent": result.sent}


@_with_plan
def build_evidence_pack(plan: RunPlan, postgres_conn_id: str, aws_conn_id: str, wanted: bool) -> dict:
    """The date's evidence pack (iam_audit.export.evidence) as a zip next to the snapshot, when asked for."""
    import tempfile
    from pathlib import Path

    from iam_audit.database import pipeline_hook
    from iam_audit.export.evidence import build_pack, evidence_key

    if not wanted:
        log.info("no evidence pack asked for (trigger param evidence_pack; make evidence DATE=... builds one)")
        return {"built": False}
    prefix, snapshot_date = plan.config.prefix, plan.snapshot_date
    store = _store(plan, aws_conn_id)
    _results_to_s3(store.hook, postgres_conn_id, plan, "exports/evidence")
    conn = pipeline_hook(postgres_conn_id).get_conn()
    with tempfile.TemporaryDirectory(prefix="iam-audit-evidence-") as tmp:
        try:
            archive = build_pack(conn, store.get, prefix, snapshot_date, Path(tmp), url=store.url)
        finally:
            conn.close()
        key = evidence_key(prefix, snapshot_date)
        store.put(key, archive.read_bytes(), content_type="application/zip")
    log.info("evidence pack of %s: %s", snapshot_date, store.url(key))
    return {"built": True, "url": store.url(key)}


# ---- expire_history ----------------------------------------------------------------------------------

@_with_plan
def expire_history(plan: RunPlan, postgres_conn_id: str) -> dict:
    from iam_audit.database import pipeline_hook
    from iam_audit.evaluate.retention import expire_history as expire

    # the pipeline's session timeouts, and each expired day's lock (a backfill may be writing it)
    hook = pipeline_hook(postgres_conn_id)
    conn = hook.get_conn()
    try:
        return expire(conn, plan.snapshot_date, plan.config.retention_days, connect=hook.get_conn)
    finally:
        conn.close()
