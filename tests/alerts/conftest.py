"""Alert tests: a database with a short verdict history (tests/bi/results.py) and real receivers."""

from __future__ import annotations

import json

import pytest

from tests.alerts.receivers import HttpReceiver, SmtpReceiver
from tests.bi import results


@pytest.fixture()
def history_db(db):
    """D1, D2, D3 of tests/bi/results.history: on D3 four findings newly fail (three accounts A, one B)."""
    results.history(db)
    return db


@pytest.fixture()
def http_receiver():
    receiver = HttpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture()
def smtp_receiver():
    receiver = SmtpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture()
def channels(monkeypatch, http_receiver, smtp_receiver):
    """The three alert connections, as a deployment defines them (environment variables), pointing at
    the local receivers. The Slack connection's password is its webhook token (a secret)."""
    monkeypatch.setenv("AIRFLOW_CONN_IAM_AUDIT_ALERTS_WEBHOOK",
                       json.dumps({"conn_type": "http", "host": http_receiver.url("/hook")}))
    monkeypatch.setenv("AIRFLOW_CONN_IAM_AUDIT_ALERTS_SLACK",
                       json.dumps({"conn_type": "slackwebhook", "host": http_receiver.url("/slack"),
                                   "password": "T000/B000/slack-token-secret"}))
    monkeypatch.setenv("AIRFLOW_CONN_IAM_AUDIT_ALERTS_SMTP",
                       json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": smtp_receiver.port,
                                   "extra": {"disable_tls": True, "disable_ssl": True,
                                             "from_email": "iam-audit@example.com"}}))
    monkeypatch.setenv("IAM_AUDIT_ALERT_RETRY_WAIT_SECONDS", "0.01")
    return http_receiver, smtp_receiver
