"""Extraction stages: AWS calls per account by operation (budget), and organisation size (discovery + extraction).

Runs the pipeline's real code in this process against an emulator: discover_accounts,
then pipeline.extract_one for every account in a thread pool (the DAG runs one
extract_one per mapped task). Calls are counted twice:
  * client side, with a botocore 'before-call.*.*' hook on every session the pipeline
    creates (one count per API call, retries not included);
  * server side, from the emulator's /_emulator/calls (one count per HTTP request,
    retries included).
"""

from __future__ import annotations

import functools
import statistics
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from common import BUCKET, EmulatedOrg, PeakRSS, log, summarize_emulator_calls

CALLER = "caller"  # calls made with the pipeline's own credentials (management account)
FIXED_BUDGET = 10


class CallCounter:
    """Counts API calls per (account, service:Operation) with botocore's event hooks."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[str, Counter] = defaultdict(Counter)

    def _on_call(self, account: str, event_name: str, **_):
        _, service, operation = event_name.split(".", 2)
        with self.lock:
            self.counts[account][f"{service}:{operation}"] += 1

    def attach(self, session, account: str) -> None:
        session.events.register("before-call.*.*", functools.partial(self._on_call, account))

    def install(self):
        """Also count the caller's own calls on every target the tasks build from the connection."""
        from iam_audit import aws

        original_target = aws.target_from_connection

        def target_from_connection(*args, **kwargs):
            target = original_target(*args, **kwargs)
            self.attach(target.session, CALLER)
            return target

        aws.target_from_connection = target_from_connection
        undo = self._install_assume_role()

        def uninstall():
            aws.target_from_connection = original_target
            undo()
        return uninstall

    def _install_assume_role(self):
        """Count every call made through sessions returned by AwsTarget.assume_role, per target account."""
        from iam_audit import aws

        original = aws.AwsTarget.assume_role
        counter = self

        def assume_role(self, role_arn, external_id=None):
            account = role_arn.split(":")[4]
            with counter.lock:
                counter.counts[account]["sts:AssumeRole (made by the caller)"] += 1
            session = original(self, role_arn, external_id)
            counter.attach(session, account)
            return session

        aws.AwsTarget.assume_role = assume_role
        return lambda: setattr(aws.AwsTarget, "assume_role", original)


class CpuBreakdown:
    """Where the extracting process's CPU goes, from the CPU time of the thread doing the work
    (time.thread_time, so waiting for an answer costs nothing): creating sessions (boto3 and
    botocore Session objects, incl. the assumed-role one), creating clients (boto3 Session.client),
    and the GetAccountAuthorizationDetails data set (extract.get_authorization_details: signing,
    reading and parsing every page, botocore's policy URL-decoding). The rest of the process's
    CPU is everything else (other calls and their parsing, JSON and gzip of the raw objects, S3
    writes, threads). Only the outermost instrumented frame of a thread counts, so a session
    created while a client is created is counted once."""

    PARTS = ("sessions", "clients", "gaad")

    def __init__(self):
        self.lock = threading.Lock()
        self.seconds = dict.fromkeys(self.PARTS, 0.0)
        self.counts = dict.fromkeys(self.PARTS, 0)
        self._local = threading.local()

    def reset(self) -> None:
        with self.lock:
            self.seconds = dict.fromkeys(self.PARTS, 0.0)
            self.counts = dict.fromkeys(self.PARTS, 0)

    def _wrap(self, owner, name: str, part: str):
        original = getattr(owner, name)
        breakdown = self

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if getattr(breakdown._local, "inside", False):
                return original(*args, **kwargs)
            breakdown._local.inside = True
            t0 = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.thread_time() - t0
                breakdown._local.inside = False
                with breakdown.lock:
                    breakdown.seconds[part] += spent
                    breakdown.counts[part] += 1

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)

    def install(self):
        import boto3.session
        import botocore.session

        from iam_audit.ingest import extract

        undo = [self._wrap(botocore.session.Session, "__init__", "sessions"),
                self._wrap(boto3.session.Session, "__init__", "sessions"),
                self._wrap(boto3.session.Session, "client", "clients"),
                self._wrap(extract, "get_authorization_details", "gaad")]
        return lambda: [u() for u in reversed(undo)]

    def per_account(self, total_cpu: float, accounts: int) -> dict:
        n = max(accounts, 1)
        out = {part: round(self.seconds[part] / n, 3) for part in self.PARTS}
        out["rest"] = round((total_cpu - sum(self.seconds.values())) / n, 3)
        out["sessions_created_per_account"] = round(self.counts["sessions"] / n, 2)
        out["clients_created_per_account"] = round(self.counts["clients"] / n, 2)
        return out


def bench_plan(bucket: str, run_id: str = "bench"):
    """The RunPlan tasks.plan_run would make for a live run of today over every account."""
    from iam_audit.config import AuditConfig
    from iam_audit.evaluate.catalogue import load_catalogue
    from iam_audit.plan import RunPlan

    return RunPlan(snapshot_date=date.today(), run_id=run_id, mode="live", config=AuditConfig(bucket=bucket),
                   frameworks=load_catalogue().frameworks)


def _in_process_airflow_env(org: EmulatedOrg):
    import os

    from common import STATE_DIR

    os.environ.update(org.airflow_env())
    os.environ.setdefault("AIRFLOW_HOME", str(STATE_DIR / "airflow-inproc"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__MAX_MAP_LENGTH", "10000")  # as the devenv sets it
    os.environ["IAM_AUDIT_AWS_MAX_ATTEMPTS"] = os.environ.get("IAM_AUDIT_AWS_MAX_ATTEMPTS", "10")


def _budget_inputs(prepared) -> dict:
    from iam_audit.ingest.transform import COLUMNS

    cols = COLUMNS["credential_report"]
    k1, k2, root = (cols.index("access_key_1_last_rotated"), cols.index("access_key_2_last_rotated"),
                    cols.index("is_root"))
    users_with_keys = sum(1 for r in prepared.tables["credential_report"]
                          if not r[root] and (r[k1] is not None or r[k2] is not None))
    enabled = sum(1 for r in prepared.tables["regions"]
                  if r[1] in (None, "opt-in-not-required", "opted-in"))
    return {"enabled_regions": enabled, "users_with_keys": users_with_keys}


def run_extraction(accounts: int, users: int, workers: int, prepare: int | None = None,
                   keep_prepared: bool = False, time_limit: float | None = None) -> tuple[dict, list]:
    """Seed an organisation, discover, extract every account; returns (result, prepared accounts)."""
    from iam_audit import tasks
    from iam_audit.ingest.load import prepare_account
    from iam_audit.ingest.raw_store import S3RawStore

    result: dict = {"accounts": accounts, "users_per_account": users, "workers": workers}
    log(f"extract: seeding {accounts} accounts x {users} users")
    org = EmulatedOrg(accounts, users)
    result["seed_seconds"] = org.seed_seconds
    prepared_accounts = []
    try:
        _in_process_airflow_env(org)
        counter = CallCounter()
        uninstall = counter.install()
        breakdown = CpuBreakdown()
        uninstall_breakdown = breakdown.install()
        try:
            with PeakRSS(pids=[org.pid]) as mem:
                t0 = time.perf_counter()
                plan = bench_plan(BUCKET)
                found = tasks.discover(plan, "aws_default")
                result["discovery_seconds"] = round(time.perf_counter() - t0, 3)
                result["discovered_accounts"] = len(found)
                snapshot_date = plan.snapshot_date.isoformat()
                per_account_seconds: dict[str, float] = {}
                failures: dict[str, str] = {}

                skipped: list[str] = []

                def one(account):
                    a0 = time.perf_counter()
                    if time_limit and a0 - t1 > time_limit:
                        skipped.append(account["account_id"])  # time box reached: not extracted
                        return
                    try:
                        tasks.extract(plan, account, "aws_default")
                    except Exception as exc:  # noqa: BLE001 - record and go on, like the DAG
                        failures[account["account_id"]] = f"{type(exc).__name__}: {exc}"[:300]
                    per_account_seconds[account["account_id"]] = time.perf_counter() - a0

                breakdown.reset()  # discovery's sessions and clients are not the extraction's
                t1, cpu1 = time.perf_counter(), time.process_time()
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    list(pool.map(one, found))
                result["extraction_seconds"] = round(time.perf_counter() - t1, 3)
                result["extracted_accounts"] = len(found) - len(skipped)
                # CPU of this (the extracting) process, all threads; the emulator is another process.
                result["extraction_cpu_seconds"] = round(time.process_time() - cpu1, 2)
                result["cpu_seconds_per_account"] = round(
                    result["extraction_cpu_seconds"] / max(result["extracted_accounts"], 1), 3)
                result["cpu_seconds_per_account_by_part"] = breakdown.per_account(
                    result["extraction_cpu_seconds"], result["extracted_accounts"])
                if skipped:
                    result["time_limit_seconds"] = time_limit
                    result["accounts_per_second"] = round(
                        result["extracted_accounts"] / result["extraction_seconds"], 2)
                    result["projected_seconds"] = {
                        n: round(n / result["accounts_per_second"]) for n in (2000, 5000)}
                skipped_ids = set(skipped)
                found = [a for a in found if a["account_id"] not in skipped_ids]
                result["total_seconds"] = round(time.perf_counter() - t0, 3)
            result["peak_rss_mib"] = {"extracting_process": mem.mib("bench"), "emulator": mem.mib(str(org.pid))}
            secs = sorted(per_account_seconds.values())
            result["seconds_per_account"] = {
                "median": round(statistics.median(secs), 3), "max": round(secs[-1], 3),
                "wall_per_account": round(result["extraction_seconds"] / max(len(found), 1), 4),
            }
            result["failed_accounts"] = len(failures)
            result["failure_examples"] = dict(list(failures.items())[:3])
        finally:
            uninstall_breakdown()
            uninstall()

        emulator_calls = org.calls()
        server_per_account, s3_calls = summarize_emulator_calls(emulator_calls)
        account_ids = [a["account_id"] for a in found]

        # Budget inputs from what was extracted (a sample when the organisation is large).
        sample = account_ids if prepare is None else account_ids[:prepare]
        store = S3RawStore(BUCKET)
        budget_rows = []
        for account_id in sample:
            prepared = prepare_account(store, plan.config.prefix, snapshot_date, account_id)
            if keep_prepared:
                prepared_accounts.append(prepared)
            inputs = _budget_inputs(prepared)
            client = counter.counts.get(account_id, Counter())
            audited = {op: n for op, n in client.items() if not op.startswith("sts:AssumeRole")}
            pages = client.get("iam:GetAccountAuthorizationDetails", 0)
            budget = FIXED_BUDGET + inputs["enabled_regions"] + pages + inputs["users_with_keys"]
            made = sum(audited.values())
            server = sum(n for op, n in server_per_account.get(account_id, {}).items()
                         if not op.startswith(("sts:", "organizations:")))
            budget_rows.append({"account_id": account_id, **inputs, "gaad_pages": pages,
                                "budget": budget, "calls": made, "emulator_calls": server,
                                "within_budget": made <= budget, "users": users})
        result["budget"] = {
            "formula": f"{FIXED_BUDGET} + enabled regions + GetAccountAuthorizationDetails pages "
                       "+ users with at least one access key (AssumeRole and S3 writes are made with the "
                       "caller's credentials and counted apart)",
            "accounts_checked": len(budget_rows),
            "accounts_within_budget": sum(r["within_budget"] for r in budget_rows),
            "worst_overrun": max((r["calls"] - r["budget"] for r in budget_rows), default=0),
            "example": budget_rows[0] if budget_rows else None,
        }
        # Calls per account by operation: client hook vs emulator.
        ops: dict[str, dict] = {}
        for account_id in account_ids:
            for op, n in counter.counts.get(account_id, {}).items():
                ops.setdefault(op, {"hook": 0, "emulator": 0})["hook"] += n
            for op, n in server_per_account.get(account_id, {}).items():
                key = _hook_name(op)
                ops.setdefault(key, {"hook": 0, "emulator": 0})["emulator"] += n
        n = len(account_ids)
        result["calls_per_account_by_operation"] = {
            op: {"hook": round(v["hook"] / n, 2), "emulator": round(v["emulator"] / n, 2)}
            for op, v in sorted(ops.items())
        }
        caller_server = server_per_account.get(org.management_id, {})
        result["caller_calls"] = {
            "hook": dict(counter.counts.get(CALLER, {})),
            "emulator_sts_assume_role": caller_server.get("sts:AssumeRole", 0),
            "s3_per_account": {op: round(v / n, 2) for op, v in s3_calls.items()},
        }
        total_hook = sum(sum(c.values()) for a, c in counter.counts.items() if a != CALLER)
        total_server = sum(sum(v.values()) for a, v in server_per_account.items())
        total_s3 = sum(s3_calls.values())
        result["calls_total"] = {"hook_incl_assume_role": total_hook, "emulator_excl_s3": total_server,
                                 "emulator_s3": total_s3, "emulator_all": total_server + total_s3}
        result["calls_per_account_mean"] = round(
            sum(r["calls"] for r in budget_rows) / max(len(budget_rows), 1), 2)
        log(f"extract: {n} accounts in {result['extraction_seconds']} s, "
            f"{result['calls_per_account_mean']} audited calls/account, "
            f"{result['budget']['accounts_within_budget']}/{len(budget_rows)} within budget")
    finally:
        org.stop()
    return result, prepared_accounts


_EMULATOR_TO_HOOK = {"accessanalyzer": "accessanalyzer", "iam": "iam", "ec2": "ec2", "account": "account",
                     "sts": "sts", "organizations": "organizations"}


def _hook_name(op: str) -> str:
    service, action = op.split(":", 1)
    return f"{_EMULATOR_TO_HOOK.get(service, service)}:{action}"
