"""Airflow task body: render the snapshot's HTML report and upload it next to the raw snapshot.

s3://<iam_audit_bucket>/<iam_audit_prefix>/snapshot_date=YYYY-MM-DD/report.html
(replay mode ignores the key: it lists only account_id=*/_manifest.json objects).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"


def report_key(prefix: str, snapshot_date: str) -> str:
    return f"{prefix}/snapshot_date={snapshot_date}/{REPORT_NAME}"


def page_url(snapshot_date: str) -> str:
    """Where the Compliance page serves this report (its /report/<date> route), under the API server's
    base URL when Airflow knows it, else relative to it."""
    from iam_audit.web import URL_PREFIX

    try:
        from airflow.configuration import conf

        base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    except Exception:  # outside Airflow (a script rendering reports): the relative path still says where
        base = ""
    return f"{base}{URL_PREFIX}/report/{snapshot_date}"


def upload_html(store, key: str, html: str) -> None:
    """Upload with ContentType text/html (so browsers render it) and the store's encryption."""
    store.put(key, html.encode("utf-8"), content_type="text/html; charset=utf-8")


def publish_report(plan: dict, postgres_conn_id: str, aws_conn_id: str) -> str:
    """Render the report of plan['snapshot_date'] and upload it; returns its s3:// URL."""
    from iam_audit.database import pipeline_hook
    from iam_audit.ingest.raw_store import S3RawStore
    from iam_audit.reporting.report import build_report_html

    config = plan["config"]
    from iam_audit.export.lineage import RESULTS, postgres_uri, report, s3_uri

    hook = pipeline_hook(postgres_conn_id)
    report(hook, inputs=lambda: [postgres_uri(postgres_conn_id, "public", RESULTS)],
           outputs=lambda: [s3_uri(config["bucket"], config.get("prefix") or "iam", REPORT_NAME)])
    conn = hook.get_conn()
    try:
        html = build_report_html(conn, plan["snapshot_date"], warnings=plan.get("warnings") or ())
    finally:
        conn.close()
    store = S3RawStore(config["bucket"], aws_conn_id=aws_conn_id, kms_key_id=config.get("kms_key_id"),
                       expected_owner=config.get("bucket_owner"))
    key = report_key(config.get("prefix") or "iam", plan["snapshot_date"])
    upload_html(store, key, html)
    log.info("report of %s: %s (%d bytes); open it from the Compliance page: %s", plan["snapshot_date"],
             store.url(key), len(html), page_url(plan["snapshot_date"]))
    return store.url(key)
