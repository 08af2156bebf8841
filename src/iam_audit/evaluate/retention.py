"""Retention of the verdict history and the staged snapshots (Variable iam_audit_retention_days).

Everything dated before snapshot_date - retention_days goes: staged rows one date
and table at a time, then the history through aws_policy_expire_history (one date
of evaluations at a time, finished intervals in batches), each step committed on
its own, so no statement deletes a whole table or holds locks for long.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta

log = logging.getLogger(__name__)


def cutoff(snapshot_date: date | str, retention_days: int) -> date:
    """The oldest snapshot date that is kept."""
    return date.fromisoformat(str(snapshot_date)) - timedelta(days=retention_days)


def expire_history(conn, snapshot_date: date | str, retention_days: int | None,
                   connect: Callable | None = None) -> dict:
    """Drop what is older than the retention; returns what was done. Needs its own connection
    (it commits step by step). With `connect`, each day's staged snapshot is deleted while holding
    that day's lock (database.snapshot_date_lock), so a backfill of an old date never interleaves."""
    from contextlib import nullcontext

    from iam_audit.database import snapshot_date_lock
    from iam_audit.ingest.load import STAGING_TABLES
    from iam_audit.ingest.organization import ORG_TABLES

    if not retention_days:
        return {"retention_days": None}
    keep_from = cutoff(snapshot_date, retention_days)
    conn.autocommit = True
    staged = [row[0] for row in conn.execute(
        "SELECT DISTINCT snapshot_date FROM iam_stage.accounts WHERE snapshot_date < %s ORDER BY 1",
        (keep_from,)).fetchall()]
    for day in staged:
        with snapshot_date_lock(connect, day) if connect else nullcontext():
            for table in reversed(STAGING_TABLES):
                conn.execute(f"DELETE FROM iam_stage.{table} WHERE snapshot_date = %s", (day,))  # noqa: S608
            for table in ORG_TABLES:
                conn.execute(f"DELETE FROM iam_stage.{table} WHERE snapshot_date = %s", (day,))  # noqa: S608
    conn.execute("CALL aws_policy_expire_history(%s)", (keep_from,))
    log.info("retention %d days: removed staged snapshots %s and verdict history before %s",
             retention_days, ", ".join(map(str, staged)) or "(none)", keep_from)
    return {"retention_days": retention_days, "kept_from": keep_from.isoformat(),
            "staged_dates_removed": [d.isoformat() for d in staged]}
