"""Stage `standin`: extraction of many accounts against the fast AWS stand-in (iam_audit_dev.standin).

The stand-in replays one emulator account, recorded once into bench/.state/standin-<users>users.json
(re-recorded with --standin-rerecord), for every account of an organisation of N accounts, in its
own process. Measured:
  * the stand-in alone: requests/s it answers to keep-alive HTTP clients in other processes, for a
    small answer (GetAccountSummary) and the largest (GetAccountAuthorizationDetails), with its CPU;
  * the pipeline's real discovery and extraction (tasks.discover, then tasks.extract per account in
    a thread pool, as stage_extract does against the emulator) in this process: wall time, the
    CPU-seconds of this process per account (the stand-in's CPU counted apart), requests/s served,
    and the calls per account by operation, client side (botocore hook) and server side.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import psutil
from common import BUCKET, STATE_DIR, EmulatedOrg, PeakRSS, log, summarize_emulator_calls


class StandInOrg:
    """EmulatedOrg's interface over the stand-in, so a stage written for the emulator can run against it:
    `url`, `manifest`, `account_ids`, `management_id`, `pid`, `client()`, `calls()`, `reset_calls()`,
    `airflow_env()`, `stop()`. N accounts in all (management included), the bench bucket created."""

    airflow_env = EmulatedOrg.airflow_env
    client = EmulatedOrg.client

    def __init__(self, accounts: int, users: int = 50, rerecord: bool = False):
        from iam_audit_dev.standin import start_standin

        t0 = time.perf_counter()
        self.standin = start_standin(snapshot_path(users, rerecord), accounts=accounts,
                                     log_path=str(STATE_DIR / "standin.log"))
        self.seed_seconds = round(time.perf_counter() - t0, 2)
        self.url = self.standin.url
        self.manifest = self.standin.manifest
        self.account_ids = [a["id"] for a in self.manifest["accounts"]]
        self.management_id = self.manifest["management_account_id"]
        self.client("s3").create_bucket(Bucket=BUCKET)
        self.standin.reset_calls()

    @property
    def pid(self) -> int:
        return self.standin.proc.pid

    def calls(self) -> list[dict]:
        return self.standin.calls()

    def reset_calls(self) -> None:
        self.standin.reset_calls()

    def stop(self) -> None:
        self.standin.stop()


def snapshot_path(users: int, rerecord: bool = False):
    from iam_audit_dev.standin import SNAPSHOT_FORMAT, record_fresh

    path = STATE_DIR / f"standin-{users}users.json"
    if not rerecord and path.exists() and json.loads(path.read_text()).get("format") != SNAPSHOT_FORMAT:
        log(f"standin: {path.name} was recorded in an older format; recording it again")
        rerecord = True
    if rerecord or not path.exists():
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        log(f"standin: recording a template account with {users} users from a fresh emulator")
        t0 = time.perf_counter()
        record_fresh(path, users=users, log_path=str(STATE_DIR / "emulator.log"))
        log(f"standin: recorded in {time.perf_counter() - t0:.1f} s")
    return path


_ACTIONS = {
    "GetAccountSummary": "Action=GetAccountSummary&Version=2010-05-08",
    "GetAccountAuthorizationDetails": "Action=GetAccountAuthorizationDetails&Version=2010-05-08&MaxItems=1000",
}


def _client(url: str, body: str, seconds: float, account: str, out) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
               "Authorization": f"AWS4-HMAC-SHA256 Credential=ASIA{account}SDIN/20261130/us-east-1/iam/aws4_request, "
                                "SignedHeaders=host, Signature=0"}
    n = size = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        conn.request("POST", "/", body=body, headers=headers)
        resp = conn.getresponse()
        size += len(resp.read())
        if resp.status != 200:
            raise RuntimeError(f"stand-in answered {resp.status}")
        n += 1
    out.put((n, size))


def throughput(server, account: str, seconds: float = 5.0, clients: int = 2) -> dict:
    """Requests/s the stand-in answers to `clients` keep-alive client processes, per action."""
    proc = psutil.Process(server.proc.pid)
    result = {}
    for action, body in _ACTIONS.items():
        out = multiprocessing.Queue()
        workers = [multiprocessing.Process(target=_client, args=(server.url, body, seconds, account, out))
                   for _ in range(clients)]
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.perf_counter()
        for w in workers:
            w.start()
        counts = [out.get(timeout=seconds + 60) for _ in workers]
        for w in workers:
            w.join()
        wall, cpu = time.perf_counter() - t0, sum(proc.cpu_times()[:2]) - cpu0
        requests = sum(c[0] for c in counts)
        result[action] = {"requests": requests, "seconds": round(wall, 2),
                          "requests_per_second": round(requests / wall, 1),
                          "response_bytes": round(sum(c[1] for c in counts) / max(requests, 1)),
                          "server_cpu_ms_per_request": round(1000 * cpu / max(requests, 1), 3)}
    return result


def run_standin(accounts: int, users: int, workers: int, throughput_seconds: float = 5.0,
                rerecord: bool = False) -> dict:
    from stage_extract import CALLER, CallCounter, _hook_name, _in_process_airflow_env, bench_plan

    from iam_audit import tasks

    result: dict = {"accounts": accounts, "users_per_account": users, "workers": workers,
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    org = StandInOrg(accounts, users, rerecord)
    server = org.standin
    result["snapshot_mib"] = round(snapshot_path(users).stat().st_size / 2**20, 1)
    try:
        if throughput_seconds:
            log(f"standin: throughput alone, {throughput_seconds} s per action")
            result["standin_alone"] = throughput(server, org.account_ids[-1], throughput_seconds)
        _in_process_airflow_env(org)
        org.reset_calls()
        counter = CallCounter()
        uninstall = counter.install()
        me, srv = psutil.Process(), psutil.Process(server.proc.pid)
        failures: dict[str, str] = {}
        per_account: list[float] = []
        try:
            with PeakRSS(pids=[server.proc.pid]) as mem:
                t0 = time.perf_counter()
                plan = bench_plan(BUCKET)
                found = tasks.discover(plan, "aws_default")
                result["discovery_seconds"] = round(time.perf_counter() - t0, 3)
                result["discovered_accounts"] = len(found)

                def one(account):
                    a0 = time.perf_counter()
                    try:
                        tasks.extract(plan, account, "aws_default")
                    except Exception as exc:  # noqa: BLE001 - record and go on, like the DAG
                        failures[account["account_id"]] = f"{type(exc).__name__}: {exc}"[:300]
                    per_account.append(time.perf_counter() - a0)

                cpu0, srv0 = sum(me.cpu_times()[:2]), sum(srv.cpu_times()[:2])
                t1 = time.perf_counter()
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    list(pool.map(one, found))
                wall = time.perf_counter() - t1
                cpu, srv_cpu = sum(me.cpu_times()[:2]) - cpu0, sum(srv.cpu_times()[:2]) - srv0
        finally:
            uninstall()
        calls = server.calls()
        served = sum(c["count"] for c in calls)
        n = len(found)
        result.update({
            "extraction_seconds": round(wall, 2),
            "failed_accounts": len(failures),
            "failure_examples": dict(list(failures.items())[:3]),
            "extracting_process_cpu_seconds_per_account": round(cpu / max(n, 1), 3),
            "standin_cpu_seconds_per_account": round(srv_cpu / max(n, 1), 3),
            "requests_served": served,
            "requests_per_second_served": round(served / wall, 1),
            "seconds_per_account": {"median": round(statistics.median(per_account), 3),
                                    "max": round(max(per_account), 3),
                                    "wall_per_account": round(wall / max(n, 1), 4)},
            "peak_rss_mib": {"extracting_process": mem.mib("bench"), "standin": mem.mib(str(server.proc.pid))},
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        })
        server_per_account, s3_calls = summarize_emulator_calls(calls)
        ops: dict[str, dict] = {}
        ids = [a["account_id"] for a in found]
        for account_id in ids:
            for op, k in counter.counts.get(account_id, {}).items():
                ops.setdefault(op, {"hook": 0, "standin": 0})["hook"] += k
            for op, k in server_per_account.get(account_id, {}).items():
                ops.setdefault(_hook_name(op), {"hook": 0, "standin": 0})["standin"] += k
        result["calls_per_account_by_operation"] = {
            op: {"hook": round(v["hook"] / n, 2), "standin": round(v["standin"] / n, 2)}
            for op, v in sorted(ops.items())}
        result["caller_calls"] = {"hook": dict(counter.counts.get(CALLER, {})),
                                  "s3_per_account": {op: round(v / n, 2) for op, v in s3_calls.items()}}
        log(f"standin: {n} accounts extracted in {result['extraction_seconds']} s, "
            f"{result['extracting_process_cpu_seconds_per_account']} CPU-s/account in the extracting process, "
            f"{result['requests_per_second_served']} requests/s served, {len(failures)} failed")
    finally:
        org.stop()
    return result
