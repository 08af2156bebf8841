"""Airflow task body: the snapshot's OCSF findings, uploaded next to the raw snapshot.

s3://<iam_audit_bucket>/<iam_audit_prefix>/snapshot_date=YYYY-MM-DD/exports/ocsf/findings.ocsf.jsonl.gz
A replay or backfill of a date rewrites its export from the stored verdicts; a failed export fails
this task only (verdicts are already stored) and the next run of the date writes it again.
"""

from __future__ import annotations

import logging
from datetime import date

log = logging.getLogger(__name__)


def _lineage(hook, postgres_conn_id: str, config: dict, output: str) -> None:
    """aws_policy_results -> s3://<bucket>/<prefix>/<output> (iam_audit.export.lineage)."""
    from iam_audit.export.lineage import RESULTS, postgres_uri, report, s3_uri

    report(hook, inputs=lambda: [postgres_uri(postgres_conn_id, "public", RESULTS)],
           outputs=lambda: [s3_uri(config["bucket"], config.get("prefix") or "iam", output)])


def export_ocsf(plan: dict, postgres_conn_id: str, aws_conn_id: str) -> dict:
    from iam_audit.database import pipeline_hook
    from iam_audit.export.ocsf import export_to_s3
    from iam_audit.tasks import _store

    config = plan["config"]
    snapshot_date = date.fromisoformat(str(plan["snapshot_date"]))
    store = _store(plan, aws_conn_id)
    _lineage(store.hook, postgres_conn_id, config, "exports/ocsf")
    conn = pipeline_hook(postgres_conn_id).get_conn()
    try:
        url, count = export_to_s3(conn, snapshot_date, store, config.get("prefix") or "iam")
    finally:
        conn.close()
    log.info("OCSF export of %s: %d findings, %s", snapshot_date, count, url)
    return {"url": url, "findings": count}


def send_to_securityhub(plan: dict, postgres_conn_id: str, aws_conn_id: str) -> dict:
    """Changed findings to the Security Hub of Variable iam_audit_securityhub_region (unset: nothing)."""
    from iam_audit.aws import target_from_connection
    from iam_audit.database import pipeline_hook
    from iam_audit.export.securityhub import Receiver, newest_sent_date, send

    region = plan["config"].get("securityhub_region")
    if not region:
        log.info("Security Hub export is off (Variable iam_audit_securityhub_region is not set)")
        return {"enabled": False}
    snapshot_date = date.fromisoformat(str(plan["snapshot_date"]))
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
                      receiver, plan["run_id"])
    finally:
        conn.close()
        ledger_conn.close()
    return {"enabled": True, "changed": result.changed, "sent": result.sent}


def build_evidence_pack(plan: dict, postgres_conn_id: str, aws_conn_id: str, wanted: bool) -> dict:
    """The date's evidence pack (iam_audit.export.evidence) as a zip next to the snapshot, when asked for."""
    import tempfile
    from pathlib import Path

    from iam_audit.database import pipeline_hook
    from iam_audit.export.evidence import build_pack, evidence_key
    from iam_audit.tasks import _store

    if not wanted:
        log.info("no evidence pack asked for (trigger param evidence_pack; make evidence DATE=... builds one)")
        return {"built": False}
    config = plan["config"]
    prefix = config.get("prefix") or "iam"
    snapshot_date = date.fromisoformat(str(plan["snapshot_date"]))
    store = _store(plan, aws_conn_id)
    _lineage(store.hook, postgres_conn_id, config, "exports/evidence")
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
