"""The Makefile's targets as a user runs them: `make help`, `make sql` (Q=, F=, standard input) on every
query of docs/data-dictionary.md, and the embedded stack's lifecycle: state that survives `make stop`
and `make airflow` in any order, Ctrl-C on `make airflow`, `make stop` saying what it stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from iam_audit_dev.devenv import stack as stack_mod
from iam_audit_dev.devenv.services import running
from iam_audit_dev.emulator.process import free_port

from tests.conftest import PROJECT_ROOT, TEST_STATE

MAKEFILE = (PROJECT_ROOT / "Makefile").read_text()
# `-o .venv/.installed`: never reinstall the shared virtualenv from a test.
MAKE = ["make", "--no-print-directory", "-C", str(PROJECT_ROOT), "-o", ".venv/.installed"]


def make(*args, state_dir=TEST_STATE, timeout=600, **kwargs):
    env = {**os.environ, "IAM_AUDIT_STATE_DIR": str(state_dir)}
    return subprocess.run([*MAKE, *args], env=env, capture_output=True, text=True, timeout=timeout, **kwargs)


def test_make_help_lists_every_target():
    targets = {m for m in re.findall(r"^([a-z][a-z-]*):", MAKEFILE, flags=re.MULTILINE)}
    out = make("help").stdout
    listed = set(re.findall(r"^make ([a-z-]+)", out, flags=re.MULTILINE))
    assert targets - listed == set(), f"make help does not list {sorted(targets - listed)}"
    assert {"bench", "install-ui", "lint", "clean", "backfill", "sql", "stop", "test-scheduler", "test-ui", "test-bi",
            "superset"} <= listed
    assert "127.0.0.1" in out and "admin" in out  # make airflow says where it binds and who is admin


def _dictionary_queries() -> list[str]:
    text = (PROJECT_ROOT / "docs" / "data-dictionary.md").read_text()
    return re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)


@pytest.fixture(scope="module")
def compliance_db(postgres):
    """The schema and views in database `compliance` of the session's PostgreSQL (TEST_STATE/pg),
    which is where `make sql` looks with IAM_AUDIT_STATE_DIR=TEST_STATE."""
    from iam_audit.database import apply_schema

    postgres.create_database(stack_mod.COMPLIANCE_DB)
    with postgres.connect(stack_mod.COMPLIANCE_DB) as conn:
        apply_schema(conn)
        conn.commit()
    return postgres


@pytest.mark.parametrize("query", _dictionary_queries(), ids=lambda q: q.split()[0] + "-" + str(len(q)))
def test_every_data_dictionary_query_runs_through_make_sql_f(compliance_db, query, tmp_path):
    path = tmp_path / "query.sql"
    path.write_text(query)
    result = make("sql", f"F={path}")
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr


def test_make_sql_reads_standard_input_and_q_with_quotes(compliance_db):
    multi_line = next(q for q in _dictionary_queries() if q.count("\n") > 2 and q.startswith("SELECT"))
    result = make("sql", input=multi_line)
    assert result.returncode == 0, result.stderr
    quoted = make("sql", "Q=SELECT 'it''s' AS \"a b\",\n 2 AS n")
    assert quoted.returncode == 0, quoted.stderr
    assert "it's" in quoted.stdout
    failing = make("sql", "Q=SELECT * FROM no_such_table")
    assert failing.returncode != 0 and "no_such_table" in failing.stderr


def _wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"{what} not within {timeout} s")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as response:  # noqa: S310
            return json.loads(response.read())["scheduler"]["status"] == "healthy"
    except (OSError, KeyError, ValueError):
        return False


@pytest.mark.e2e
@pytest.mark.scheduler
def test_state_survives_stop_and_airflow_and_ctrl_c_stops_airflow():
    state = TEST_STATE / f"devenv-{uuid.uuid4().hex[:8]}"
    try:
        stack, manifest = stack_mod.up(state_dir=state, accounts=1, users=2)
        account = manifest["accounts"][1]["id"]
        key = f"iam/snapshot_date=2026-01-02/account_id={account}/_manifest.json"
        stack.boto3_client("s3").put_object(Bucket=stack.bucket, Key=key, Body=b"{}", ServerSideEncryption="AES256")

        stopped = make("stop", state_dir=state)
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped: AWS emulator" in stopped.stdout and "stopped: PostgreSQL" in stopped.stdout
        assert not any(stack_mod.status(state).values())

        # `make airflow` on the stopped stack: a new emulator, the same raw snapshots.
        port = free_port()
        env = {**os.environ, "IAM_AUDIT_STATE_DIR": str(state), "AIRFLOW_PORT": str(port)}
        with open(state / "make-airflow.log", "w") as log:
            # its own group with Ctrl-C's default action, as a terminal's foreground job (a shell's
            # background job, e.g. pytest started with `&`, would pass SIGINT on as ignored)
            proc = subprocess.Popen([*MAKE, "airflow"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True,
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            _wait(lambda: _healthy(f"http://127.0.0.1:{port}") or proc.poll() is not None, 900, "make airflow")
            assert proc.poll() is None, (state / "make-airflow.log").read_text()[-3000:]
            emulator = stack_mod.running_emulator(state)
            restored = stack_mod.Stack(postgres=stack.postgres, emulator_url=emulator["url"], state_dir=state)
            assert restored.boto3_client("s3").get_object(Bucket=stack.bucket, Key=key)["ServerSideEncryption"] \
                == "AES256"
            services = running(state / "airflow")
            assert services and {"scheduler", "dag-processor", "triggerer", "api-server"} <= set(services["pids"])

            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        import psutil

        assert not [p for p in services["pids"].values() if psutil.pid_exists(p)
                    and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        assert "Airflow stopped" in (state / "make-airflow.log").read_text()
        assert stack_mod.status(state)["Airflow (make airflow)"] is None
        assert stack_mod.status(state)["PostgreSQL"]  # the embedded services keep running after Ctrl-C
    finally:
        final = make("stop", state_dir=state)
    assert final.returncode == 0 and not any(stack_mod.status(state).values()), final.stdout + final.stderr


# A stand-in for `superset run` with a child of its own, as a web server with worker processes has:
# stopping only the process serve.py started would leave the child answering.
SERVER_WITH_A_CHILD = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", sys.argv[1]])
sys.exit(child.wait())
"""


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):  # noqa: S310 - local URL
            return True
    except OSError:
        return False


def _start_superset_stand_in(state, port):
    """bi/superset/serve.py's serving step (what `make superset` does once Superset is prepared) on the
    stand-in server, in a process of its own as `make superset` is."""
    code = ("import os, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import serve; "
            "sys.exit(serve.serve([sys.executable, '-c', sys.argv[2], sys.argv[3]], dict(os.environ), "
            "Path(sys.argv[4]), int(sys.argv[3])))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(PROJECT_ROOT / "bi" / "superset"), SERVER_WITH_A_CHILD,
                             str(port), str(state)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    _wait(lambda: _answers(port) or proc.poll() is not None, 120, "the stand-in server")
    assert proc.poll() is None
    return proc


def test_make_stop_stops_superset_and_sigterm_to_serve_leaves_no_server():
    import psutil

    state = TEST_STATE / f"superset-{uuid.uuid4().hex[:8]}"
    port = free_port()
    serve = _start_superset_stand_in(state, port)
    server_pids = [p.pid for p in psutil.Process(serve.pid).children(recursive=True)]
    assert len(server_pids) == 2 and stack_mod.status(state)["Superset (make superset)"]
    serve.send_signal(signal.SIGTERM)
    serve.wait(timeout=60)
    _wait(lambda: not any(psutil.pid_exists(p) for p in server_pids), 30, "the server's processes gone")
    assert not _answers(port) and stack_mod.status(state)["Superset (make superset)"] is None

    serve = _start_superset_stand_in(state, port)
    stopped = make("stop", state_dir=state)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "stopped: Superset (make superset)" in stopped.stdout
    serve.wait(timeout=60)
    assert not _answers(port) and not any(stack_mod.status(state).values())
