"""Shared plumbing of the benchmark: its own PostgreSQL database and emulator, timers, peak memory.

The benchmark never uses the demo's services under .devenv/: PostgreSQL runs from
bench/.state/pg (pgserver, Unix socket only) and every stage starts its own
emulator on a free port, so it can run beside `make demo` and the tests.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

BENCH_DIR = Path(__file__).resolve().parent
STATE_DIR = BENCH_DIR / ".state"
RESULTS_DIR = BENCH_DIR / "results"
BENCH_DB = "iam_bench"
BUCKET = "iam-audit-bench"
ACCESS_KEY = "AKIAEMULATORBENCH001"
SECRET_KEY = "emulator-bench-secret"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def machine() -> dict:
    vm = psutil.virtual_memory()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(),
        "memory_gib": round(vm.total / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


class PeakRSS:
    """Samples the resident memory of this process (and optionally other pids and children) in a thread."""

    def __init__(self, pids=(), children: bool = False, interval: float = 0.2):
        self.pids = [os.getpid(), *pids]
        self.children = children
        self.interval = interval
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()

    def _sample(self):
        for pid in self.pids:
            try:
                proc = psutil.Process(pid)
                rss = proc.memory_info().rss
                if self.children:
                    for child in proc.children(recursive=True):
                        try:
                            rss += child.memory_info().rss
                        except psutil.Error:
                            pass
            except psutil.Error:
                continue
            key = "bench" if pid == os.getpid() else str(pid)
            self.peak[key] = max(self.peak.get(key, 0), rss)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    def mib(self, key: str = "bench") -> float:
        return round(self.peak.get(key, 0) / 2**20, 1)


@contextmanager
def timed(into: dict, key: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        into[key] = round(time.perf_counter() - t0, 3)


# ---- services ------------------------------------------------------------------------

_PG = None


def postgres():
    """The benchmark's own embedded PostgreSQL (started once, left running like the demo's)."""
    global _PG
    if _PG is None:
        from iam_audit_dev.devenv.postgres import start_postgres

        _PG = start_postgres(STATE_DIR / "pg")
    return _PG


def fresh_database(name: str = BENCH_DB, schema: bool = True):
    """Drop and recreate a database; apply the project's schema; return an open psycopg connection."""
    import psycopg

    pg = postgres()
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    conn = pg.connect(name)
    if schema:
        from iam_audit.database import apply_schema

        apply_schema(conn)
    return conn


class EmulatedOrg:
    """A fresh emulator process seeded with an organisation; stop() ends it."""

    def __init__(self, accounts: int, users: int, seed: int = 42):
        from iam_audit_dev.emulator.process import start_emulator

        STATE_DIR.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self.emulator = start_emulator(log_path=str(STATE_DIR / "emulator.log"))
        # seed(accounts=N) creates the management account plus N members: N-1 gives N in total.
        self.manifest = self.emulator.seed(accounts=max(accounts - 1, 0), users=users, seed=seed)
        self.seed_seconds = round(time.perf_counter() - t0, 2)
        self.url = self.emulator.url
        self.account_ids = [a["id"] for a in self.manifest["accounts"]]
        self.management_id = self.manifest["management_account_id"]
        self.client("s3").create_bucket(Bucket=BUCKET)
        self.emulator.reset_calls()

    @property
    def pid(self) -> int:
        return self.emulator.proc.pid

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def calls(self) -> list[dict]:
        return self.emulator.calls()

    def reset_calls(self) -> None:
        self.emulator.reset_calls()

    def airflow_env(self) -> dict[str, str]:
        import json

        return {
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
                "conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY,
                "extra": {"endpoint_url": self.url, "region_name": "us-east-1"},
            }),
            "AIRFLOW_VAR_IAM_AUDIT_BUCKET": BUCKET,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def stop(self) -> None:
        self.emulator.stop()


def summarize_emulator_calls(calls: list[dict], exclude_services=("s3",)) -> tuple[dict, dict]:
    """Emulator counts as {account: {Service:Action: n}} for audit services, and S3 counts overall."""
    per_account: dict[str, dict[str, int]] = {}
    s3: dict[str, int] = {}
    for c in calls:
        op = f"{c['service']}:{c['action']}"
        if c["service"] in exclude_services:
            s3[op] = s3.get(op, 0) + c["count"]
            continue
        per_account.setdefault(c["account_id"], {})
        per_account[c["account_id"]][op] = per_account[c["account_id"]].get(op, 0) + c["count"]
    return per_account, s3
