"""The embedded PostgreSQL comes back after an unclean stop even when recovery outlasts pgserver's wait."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pgserver.postgres_server as pgserver_server
import psycopg
from iam_audit_dev.devenv.postgres import start_postgres
from pgserver.utils import PostmasterInfo

from tests.conftest import TEST_STATE


def _kill_postmaster(data_dir) -> None:
    info = PostmasterInfo.read_from_pgdata(data_dir)
    os.kill(info.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while info.is_running() and time.monotonic() < deadline:
        time.sleep(0.2)


def test_start_after_a_killed_server_waits_for_recovery(monkeypatch):
    data_dir = TEST_STATE / "pg-recovery"
    server = start_postgres(data_dir)
    with psycopg.connect(server.uri, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS survivor; CREATE TABLE survivor AS SELECT 42 AS answer")
    _kill_postmaster(data_dir)
    pgserver_server.PostgresServer._instances.pop(data_dir.resolve(), None)  # as in a new process

    real_pg_ctl = pgserver_server.pg_ctl

    def impatient_pg_ctl(args, **kwargs):
        # as pgserver's 10 s wait is against a long crash recovery: the start times out, the server goes on
        if args[-1] == "start":
            real_pg_ctl([a for a in args if a != "-w"], **{**kwargs, "timeout": 60})
            raise subprocess.TimeoutExpired(cmd="pg_ctl start", timeout=kwargs.get("timeout", 10))
        return real_pg_ctl(args, **kwargs)

    monkeypatch.setattr(pgserver_server, "pg_ctl", impatient_pg_ctl)
    try:
        server = start_postgres(data_dir)
        with psycopg.connect(server.uri) as conn:
            assert conn.execute("SELECT answer FROM survivor").fetchone() == (42,)
    finally:
        monkeypatch.undo()
        start_postgres(data_dir).stop()
