"""The send_alerts task: Variables, connections and context around iam_audit.alerting.alerts."""

from __future__ import annotations

import logging
import os

from iam_audit.alerting import alerts

log = logging.getLogger(__name__)


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


def send_alerts(plan: dict, postgres_conn_id: str) -> dict:
    """Evaluate the alert rules for the run's snapshot, record new alerts, deliver every unsent one.

    A replay (backfill, re-evaluation of a past date) sends nothing: its changes were current on that date.
    With none of the alert connections defined, alerting is off (a warning, no ledger rows)."""
    if plan["mode"] == "replay":
        log.info("replay of %s: alert rules are not evaluated and nothing is sent", plan["snapshot_date"])
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
        result = alerts.run_alerts(conn, rules, routes, plan["snapshot_date"], plan["run_id"],
                                   conf.get("api", "base_url", fallback="http://localhost:8080"),
                                   timeout=os.environ.get("IAM_AUDIT_ALERT_RULE_TIMEOUT", "60s"))
    finally:
        conn.close()
    result.rule_errors = [str(e) for e in refused] + result.rule_errors
    log.info("alerts of %s (channels configured: %s)\n%s", plan["snapshot_date"], ", ".join(channels),
             result.report())
    if result.rule_errors or result.failures:
        raise AlertsFailed(
            "alerting did not complete; the other rules and channels did. "
            + "; ".join([f"rule refused: {e}" for e in result.rule_errors]
                        + [f"not delivered (kept unsent in aws_policy_alert_ledger, the next run or a retry "
                           f"sends it): {f}" for f in result.failures]))
    return result.summary()
