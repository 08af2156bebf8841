"""Where the run's HTML report goes: next to the raw snapshot, served as a page.

s3://<iam_audit_bucket>/<iam_audit_prefix>/snapshot_date=YYYY-MM-DD/report.html
(replay mode ignores the key: it lists only account_id=*/_manifest.json objects).
The publish_report task (iam_audit.tasks) renders it with iam_audit.reporting.report.
"""

from __future__ import annotations

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
