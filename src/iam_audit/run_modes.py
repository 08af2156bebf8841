"""live or replay: the one rule for mode=auto, and the guard on live runs for past dates.

The rule's sentence below is quoted verbatim by the DAG's docs and trigger form
(tests/unit/test_run_modes.py keeps them identical).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from iam_audit.config import ConfigError

MODES = ("auto", "live", "replay")
AUTO_RULE = ("auto: live when the logical date is today (UTC), replay when it is earlier; "
             "a live run for a past date is refused unless overwrite_past_snapshot is true.")
OVERRIDE_PARAM = "overwrite_past_snapshot"
OVERRIDE_HELP = ("Allow mode=live for a logical date before today: reads IAM now and replaces that date's "
                 "stored snapshot and verdicts with today's state.")


def run_mode(requested: str, snapshot_date: date, today: date | None = None,
             overwrite_past_snapshot: bool = False) -> str:
    """'live' reads IAM now; 'replay' re-evaluates the snapshot already in S3 (backfills). See AUTO_RULE."""
    if requested not in MODES:
        raise ConfigError(f"param mode={requested!r} must be one of {', '.join(MODES)}")
    today = today or datetime.now(UTC).date()
    if requested == "auto":
        return "live" if snapshot_date >= today else "replay"
    if requested == "live" and snapshot_date < today and not overwrite_past_snapshot:
        raise ConfigError(
            f"param mode=live for logical date {snapshot_date}, before today ({today}), would replace that "
            f"date's stored snapshot and verdicts with IAM as it is now. Use mode=replay (or auto) to "
            f"re-evaluate the stored snapshot, or set param {OVERRIDE_PARAM}=true to overwrite it on purpose."
        )
    return requested
