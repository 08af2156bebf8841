"""The stored HTML report of a snapshot date, for the page's /report/<date> route: the object the run's
publish_report task wrote (iam_audit.reporting.publish.report_key) in the pipeline's bucket, read
through the pipeline's AWS connection with the same bucket-owner check as every other read."""

from datetime import date

from iam_audit.reporting.publish import report_key

AWS_CONN_ID = "aws_default"
MAX_REPORT_BYTES = 64 * 1024 * 1024


class ReportNotFound(LookupError):
    """No report stored for the date (the run has not published one, or the bucket is not configured)."""


def parse_day(text: str) -> str:
    """The date of a report URL, as YYYY-MM-DD; ValueError naming it otherwise."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise ValueError(f"date {text!r} is not a date such as 2026-11-28")


def _variable(name: str) -> str | None:
    from airflow.models.variable import Variable

    return Variable.get(name, default_var=None)


def _connection_defined(conn_id: str) -> bool:
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def read_stored_report(day: str) -> bytes:
    """The report's bytes; ReportNotFound when it does not exist or no bucket is configured."""
    from iam_audit.config import DEFAULT_PREFIX, VAR_BUCKET, VAR_BUCKET_OWNER, VAR_PREFIX
    from iam_audit.ingest.raw_store import RawObjectMissing, S3RawStore

    bucket = _variable(VAR_BUCKET)
    if not bucket:
        raise ReportNotFound(f"the Variable {VAR_BUCKET} is not set: no report is stored")
    prefix = (_variable(VAR_PREFIX) or DEFAULT_PREFIX).strip().strip("/")
    store = S3RawStore(bucket, aws_conn_id=AWS_CONN_ID, expected_owner=_variable(VAR_BUCKET_OWNER) or None)
    key = report_key(prefix, day)
    if not _connection_defined(AWS_CONN_ID):
        raise ReportNotFound(f"the run stored the report of {day} at {store.url(key)}; this API server has no "
                             f"connection {AWS_CONN_ID} to read it (the page reads the bucket only through it)")
    try:
        return store.get(key, max_bytes=MAX_REPORT_BYTES)
    except RawObjectMissing:
        raise ReportNotFound(f"no report of {day} is stored ({store.url(key)}): run the DAG for that date") from None
