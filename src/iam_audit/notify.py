"""The DAG's on_failure_callback: log a concise alert and hand it to the user's notifier.

Point IAM_AUDIT_ON_FAILURE_CALLBACK at "package.module:function" (importable by
the scheduler/dag processor) to receive (context, message), e.g. to post to
Slack or PagerDuty with the providers' notifiers.
"""

from __future__ import annotations

import importlib
import logging
import os

log = logging.getLogger(__name__)
ENV_VAR = "IAM_AUDIT_ON_FAILURE_CALLBACK"


def failure_message(context) -> str:
    dag_run = context.get("dag_run")
    run_id = getattr(dag_run, "run_id", None) or context.get("run_id")
    reason = context.get("reason") or "a task failed"
    return f"aws_iam_cis run {run_id} failed ({reason}); failed accounts show as red extract_account tasks"


def resolve(path: str):
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{ENV_VAR}={path!r} must look like 'package.module:function'")
    return getattr(importlib.import_module(module_name), attribute)


def on_run_failure(context) -> None:
    message = failure_message(context)
    log.error(message)
    target = os.environ.get(ENV_VAR)
    if target:
        resolve(target)(context, message)
