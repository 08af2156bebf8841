"""Airflow task body: the snapshot's OCSF findings, uploaded next to the raw snapshot.

s3://<iam_audit_bucket>/<iam_audit_prefix>/snapshot_date=YYYY-MM-DD/exports/ocsf/findings.ocsf.jsonl.gz
A replay or backfill of a date rewrites its export from the stored verdicts; a failed export fails
this task only (verdicts are already stored) and the next run of the date writes it again.
"""

from __future__ import annotations

import logging
from datetime import date

log = logging.getLogger(__name__)


def export_ocsf(plan: dict, postgres_conn_id: str, aws_conn_id: str) -> dict:
    from iam_audit.database import pipeline_hook
    from iam_audit.export.ocsf import export_to_s3
    from iam_audit.raw_store import S3RawStore

    config = plan["config"]
    snapshot_date = date.fromisoformat(str(plan["snapshot_date"]))
    store = S3RawStore(config["bucket"], aws_conn_id=aws_conn_id, kms_key_id=config.get("kms_key_id"))
    conn = pipeline_hook(postgres_conn_id).get_conn()
    try:
        url, count = export_to_s3(conn, snapshot_date, store, config.get("prefix") or "iam")
    finally:
        conn.close()
    log.info("OCSF export of %s: %d findings, %s", snapshot_date, count, url)
    return {"url": url, "findings": count}
