import pytest

from iam_audit import notify

received = []


def collect(context, message):
    received.append((context, message))


def test_failure_callback_calls_the_configured_notifier(monkeypatch):
    monkeypatch.setenv(notify.ENV_VAR, "tests.unit.test_notify:collect")
    notify.on_run_failure({"run_id": "scheduled__2026-11-29", "reason": "task_failure"})
    import sys

    received = sys.modules["tests.unit.test_notify"].received  # the module the callback path resolved to
    assert received and "scheduled__2026-11-29" in received[-1][1] and "task_failure" in received[-1][1]


def test_bad_notifier_path_is_explained():
    with pytest.raises(ValueError, match="package.module:function"):
        notify.resolve("no_colon_here")
