"""aws_iam_cis: daily CIS AWS Foundations audit of every account's IAM.

discover accounts -> extract (one mapped task per account, or per batch of
Variable iam_audit_accounts_per_task accounts) -> raw JSON in S3
-> load staging (COPY) -> one SQL task per control logic -> summary, report, alerts.
This module only declares the flow: every task body is in iam_audit.tasks (the one module that touches
Airflow), which calls the stage packages (ingest, evaluate, reporting, alerting, export) in this order.
dags/aws_iam_cis.py puts it in Airflow's dags folder.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from airflow.sdk import Asset, Param, dag, get_current_context, task

from iam_audit import custom, tasks
from iam_audit.integrity import verify_installation
from iam_audit.tasks import (
    AUTO_RULE,
    OVERRIDE_HELP,
    OVERRIDE_PARAM,
    CheckOperator,
    on_run_failure,
    session_options,
)

AWS_CONN_ID = "aws_default"
POSTGRES_CONN_ID = "postgres_default"
# The pool of the AWS work, unless IAM_AUDIT_AWS_POOL names another:
# `airflow pools set iam_audit_aws <slots> "AWS API concurrency"`.
AWS_POOL = "iam_audit_aws"
RESULTS_ASSET = Asset(name="aws_policy_results", uri="iam-audit://postgres_default/public/aws_policy_results")

DOC = """
### CIS AWS Foundations audit of IAM, every account, every day

Assumes `iam_audit_role_name` in each account, stores raw IAM state in
`s3://{iam_audit_bucket}/iam/snapshot_date=.../account_id=.../`, loads it into
`iam_stage.*` and writes one verdict per control and resource into
**aws_policy_results** (pass / fail / error).

Param `mode`: live reads IAM now; replay re-evaluates the snapshot stored for the
logical date and makes no IAM call. {auto_rule}
Backfills (`make backfill`, the Backfill form, `airflow backfill create`) replay.
"""

log = logging.getLogger(__name__)


def aws_iam_cis():
    """Build the DAG. The dags-folder file calls this at every parse: every setting read at parse time
    (the environment's retries, timeouts and pool, the custom controls' folder and its Variable) is read
    again, even where Airflow pre-imports this module once in a long-lived parent process."""
    # An incomplete installation, or SQL of another version, is an import error of this DAG naming the
    # files, not a check failing mid-run.
    verify_installation()
    # The user's own controls (iam_audit.custom), read at every parse: environment variable
    # IAM_AUDIT_CUSTOM_PATH or option [iam_audit] custom_path, like the other parse-time settings here, else
    # Variable iam_audit_custom_path. The tasks of this process then see the same catalogue.
    custom.configure(custom.resolve_path())
    controls = custom.current()
    catalogue = controls.catalogue
    for refusal in controls.refused:
        # as an import error would be, but for one control: the others, built-in ones first, still run
        log.error("custom control refused: %s", refusal)
    # Concurrent AWS API work across all runs.
    aws_pool = os.environ.get("IAM_AUDIT_AWS_POOL", AWS_POOL)
    # No run or task may hang forever (a stuck AWS call, a lock): both bounds are configurable.
    dagrun_timeout = timedelta(minutes=int(os.environ.get("IAM_AUDIT_DAGRUN_TIMEOUT_MINUTES", "360")))
    task_timeout = timedelta(minutes=int(os.environ.get("IAM_AUDIT_TASK_TIMEOUT_MINUTES", "60")))

    @dag(
        dag_id="aws_iam_cis",
        schedule="@daily",
        # No start_date: until the DAG has a scheduled or backfill run, unpausing it schedules its first run
        # for the next midnight (UTC) instead of today's, already past. The Trigger form's "Unpause on trigger"
        # then gives one run, the one triggered, not also a scheduled run for the same day.
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=dagrun_timeout,
        tags=["security", "compliance", "aws", "iam", "cis"],
        doc_md=DOC.replace("{auto_rule}", AUTO_RULE) + custom.doc_note(controls),
        description="CIS AWS Foundations Benchmark IAM controls across the organisation",
        template_searchpath=controls.search_path(),
        on_failure_callback=on_run_failure,
        default_args={
            "owner": "security-data",
            "retries": int(os.environ.get("IAM_AUDIT_TASK_RETRIES", "2")),
            "retry_delay": timedelta(seconds=int(os.environ.get("IAM_AUDIT_RETRY_DELAY_SECONDS", "60"))),
            "execution_timeout": task_timeout,
        },
        params={
            "accounts": Param([], type="array", items={"type": "string", "pattern": "^[0-9]{12}$"},
                              description="Audit only these account ids (empty: all accounts)."),
            "frameworks": Param(list(catalogue.frameworks), type="array",
                                items={"type": "string", "enum": list(catalogue.frameworks)},
                                description="Frameworks to evaluate."),
            "mode": Param("auto", type="string", enum=["auto", "live", "replay"],
                          description="live: read IAM now; replay: re-evaluate the stored snapshot of the "
                                      "logical date. " + AUTO_RULE),
            OVERRIDE_PARAM: Param(False, type="boolean", description=OVERRIDE_HELP),
            "evidence_pack": Param(False, type="boolean",
                                   description="Also store an auditor's evidence pack of the date (CSV, printable "
                                               "summary, manifest of hashed raw objects) as a zip next to it in S3."),
        },
    )
    def aws_iam_cis():
        @task
        def plan_run() -> dict:
            """Validate Variables and params before any AWS call; decide live or replay."""
            return tasks.plan_run(get_current_context())

        @task
        def prepare_database() -> list[str]:
            """Apply pending migrations once each, sql/functions and sql/views when changed; sync the catalogue."""
            return tasks.prepare_database(POSTGRES_CONN_ID)

        @task(pool=aws_pool)
        def discover_accounts(plan: dict) -> list[dict]:
            return tasks.discover(plan, AWS_CONN_ID)

        @task
        def batch_accounts(plan: dict, accounts: list[dict]) -> list[list[dict]]:
            """Accounts per mapped extract task: Variable iam_audit_accounts_per_task (default 1, one task each)."""
            return tasks.batch_accounts(plan, accounts)

        @task(map_index_template="{{ account_label }}", max_active_tis_per_dagrun=16, pool=aws_pool)
        def extract_account(accounts: list[dict], plan: dict) -> dict:
            context = get_current_context()
            context["account_label"] = tasks.batch_label(accounts)
            return tasks.extract_batch(plan, accounts, AWS_CONN_ID, first_try=context["ti"].try_number <= 1)

        @task(trigger_rule="all_done")
        def load_staging() -> dict:
            """Load every account whose extraction wrote a snapshot, whatever happened to the others."""
            from airflow.sdk.exceptions import AirflowSkipException

            ti = get_current_context()["ti"]
            plan, accounts = ti.xcom_pull(task_ids="plan_run"), ti.xcom_pull(task_ids="discover_accounts")
            if plan is None or accounts is None:
                raise AirflowSkipException("planning or account discovery failed: nothing to load or check")
            return tasks.load(plan, accounts, AWS_CONN_ID, POSTGRES_CONN_ID)

        @task(trigger_rule="none_skipped", outlets=[RESULTS_ASSET])
        def summarize(plan: dict, accounts: list[dict]) -> dict:
            """Log the compliance summary; fail the run when any account could not be fully audited."""
            alerts = get_current_context()["ti"].xcom_pull(task_ids="send_alerts")
            return tasks.summarize(plan, accounts, POSTGRES_CONN_ID, alerts=alerts)

        @task(trigger_rule="none_skipped")
        def publish_report(plan: dict) -> str:
            """Render the HTML report of the snapshot and store it next to the raw data in S3."""
            return tasks.publish_report(plan, POSTGRES_CONN_ID, AWS_CONN_ID)

        @task(trigger_rule="none_skipped")
        def send_alerts(plan: dict) -> dict:
            """Evaluate the alert rules (sql/alerts and the custom folder) and deliver each new alert once."""
            return tasks.send_alerts(plan, POSTGRES_CONN_ID)

        @task(trigger_rule="none_skipped")
        def export_ocsf(plan: dict) -> dict:
            """Every verdict of the snapshot as OCSF Compliance Findings (JSON Lines, gzip) next to it in S3."""
            return tasks.export_ocsf(plan, POSTGRES_CONN_ID, AWS_CONN_ID)

        @task(trigger_rule="none_skipped", pool=aws_pool)
        def send_to_securityhub(plan: dict) -> dict:
            """Changed findings to AWS Security Hub, when Variable iam_audit_securityhub_region is set."""
            return tasks.send_to_securityhub(plan, POSTGRES_CONN_ID, AWS_CONN_ID)

        @task(trigger_rule="none_skipped")
        def build_evidence_pack(plan: dict) -> dict:
            """With trigger param evidence_pack: the date's evidence pack as a zip next to the snapshot."""
            wanted = bool(get_current_context()["params"].get("evidence_pack"))
            return tasks.build_evidence_pack(plan, POSTGRES_CONN_ID, AWS_CONN_ID, wanted)

        @task(trigger_rule="none_skipped")
        def expire_history(plan: dict) -> dict:
            """Drop verdict history and staged snapshots older than Variable iam_audit_retention_days (if set)."""
            return tasks.expire_history(plan, POSTGRES_CONN_ID)

        @task(trigger_rule="one_failed")
        def fail_run_on_task_failure() -> None:
            """Watcher: runs only when a task failed, and fails the run so alerting fires."""
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException("a task of this run failed; see the failed tasks (per account) in the grid")

        refused = []
        if controls.refused:
            @task(retries=0, doc_md=custom.doc_note(controls))
            def custom_controls_refused() -> None:
                """Red in the grid while every accepted control runs: the custom controls left out, file:line."""
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(custom.refusal_text(controls))

            refused = [custom_controls_refused()]

        plan = plan_run()
        schema = prepare_database()
        accounts = discover_accounts(plan)
        batches = batch_accounts(plan, accounts)
        extracted = extract_account.partial(plan=plan).expand(accounts=batches)
        loaded = load_staging()
        plan >> schema >> accounts
        [plan, accounts, extracted] >> loaded

        checks = [
            CheckOperator(
                task_id=f"check_{check.logic}",
                needs=check.needs,
                conn_id=POSTGRES_CONN_ID,
                # lock_timeout, statement_timeout and the date lock's wait (iam_audit.database.timeouts)
                hook_params={"options": session_options()},
                sql=f"checks/{check.logic}.sql",
                parameters=plan["check_params"],
                split_statements=True,
                return_last=False,
                show_return_value_in_logs=False,
                # Run after a partial load (failed accounts give 'error' verdicts); skip when nothing was loaded.
                trigger_rule="none_skipped",
                doc_md=check.doc_md(),
            )
            for check in catalogue.checks
        ]
        summary = summarize(plan, accounts)
        report = publish_report(plan)
        loaded >> checks >> summary
        alerted = send_alerts(plan)
        checks >> alerted >> summary   # the summary reports the alerts' counts
        ocsf = export_ocsf(plan)
        securityhub = send_to_securityhub(plan)
        evidence = build_evidence_pack(plan)
        exports = [report, ocsf, securityhub, evidence]
        for export in exports:
            checks >> export
        retention = expire_history(plan)
        [summary, *exports] >> retention
        watched = [*refused, plan, schema, accounts, batches, extracted, loaded, *checks, summary, alerted, *exports,
                   retention]
        watched >> fail_run_on_task_failure()

    return aws_iam_cis()
