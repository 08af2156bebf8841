"""`make bench`: performance of the aws_iam_cis pipeline, stage by stage, on this machine.

Stages (all on the benchmark's own PostgreSQL under bench/.state/ and fresh emulators):
  calls   AWS calls per account by operation against the budget; feeds `load`
  load    load.write_account vs a raw COPY of the same rows
  checks  every check on a synthetic N x M snapshot vs a full scan of what the checks read
  scale   discovery + extraction of a large organisation (real code, thread pool), wall and memory
  e2e     the DAG on LocalExecutor vs Prowler on the same emulated organisation
  curve   extraction and checks at several sizes (how cost grows with accounts and users)
  standin extraction of N accounts against the fast AWS stand-in (iam_audit_dev.standin): requests/s it
          serves alone, CPU-seconds per account of the extracting process, wall time
  dagscale the whole DAG (devenv services; LocalExecutor or --executor CeleryExecutor with
          --celery-workers) against the stand-in at N mapped accounts: wall time per phase, scheduler
          overhead per mapped task, peak memory per component, UI time to first byte; optionally a
          no-op DAG first (--dagscale-noop-tasks: Airflow's own overhead per task instance)
  history N days of verdict history with daily churn: bytes per day, check time against the
          earlier design, tile and Compliance page query times, retention
  alerts  every shipped alert rule after N days of history with daily churn, as a share of the
          day's checks time measured in the same run

Prints one table and writes bench/results/latest.json and latest.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS_DIR, log, machine  # noqa: E402

STAGES = ("calls", "load", "checks", "scale", "e2e", "curve", "history", "standin", "dagscale", "alerts", "exports")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="make bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default="calls,load,checks,scale,e2e",
                   help=f"comma-separated subset of {','.join(STAGES)} (default: all but curve)")
    p.add_argument("--accounts", type=int, default=10, help="calls: emulated accounts")
    p.add_argument("--users", type=int, default=200, help="calls: users per account")
    p.add_argument("--workers", type=int, default=8, help="calls/scale: extraction threads")
    p.add_argument("--load-accounts", type=int, default=200, help="load: accounts (clones of the extracted ones)")
    p.add_argument("--check-accounts", type=int, default=300, help="checks: synthetic accounts")
    p.add_argument("--check-users", type=int, default=100, help="checks: synthetic users per account")
    p.add_argument("--no-plans", action="store_true", help="checks: skip EXPLAIN (ANALYZE, BUFFERS)")
    p.add_argument("--scale-accounts", type=int, default=2000, help="scale: emulated accounts")
    p.add_argument("--scale-users", type=int, default=2, help="scale: users per account")
    p.add_argument("--scale-workers", type=int, default=32, help="scale: extraction threads")
    p.add_argument("--scale-time-limit", type=float, default=120,
                   help="scale: stop starting accounts after this many seconds and project from the rate (0: none)")
    p.add_argument("--e2e-accounts", type=int, default=50, help="e2e: emulated accounts")
    p.add_argument("--e2e-users", type=int, default=50, help="e2e: users per account")
    p.add_argument("--parallelism", type=int, default=4,
                   help="e2e: LocalExecutor parallelism = Prowler processes at a time")
    p.add_argument("--executor", default="LocalExecutor", choices=("LocalExecutor", "CeleryExecutor"),
                   help="e2e/dagscale: Airflow executor (CeleryExecutor: Redis broker and --celery-workers workers)")
    p.add_argument("--celery-workers", type=int, default=2, help="e2e/dagscale: Celery workers (CeleryExecutor)")
    p.add_argument("--no-prowler", action="store_true")
    p.add_argument("--curve-accounts", default="30,100,300", help="curve: account counts for checks")
    p.add_argument("--curve-users", default="10,100,1000", help="curve: users per account (checks, extraction)")
    p.add_argument("--curve-max-users", type=int, default=100_000,
                   help="curve: skip check sizes with more users in total (accounts x users)")
    p.add_argument("--history-accounts", type=int, default=300, help="history: synthetic accounts")
    p.add_argument("--history-users", type=int, default=100, help="history: synthetic users per account")
    p.add_argument("--history-days", type=int, default=90, help="history: days of history")
    p.add_argument("--history-churn", type=float, default=1.0, help="history: percent of verdicts changing daily")
    p.add_argument("--alerts-accounts", type=int, default=300, help="alerts: synthetic accounts")
    p.add_argument("--alerts-users", type=int, default=100, help="alerts: synthetic users per account")
    p.add_argument("--alerts-days", type=int, default=90, help="alerts: days of history")
    p.add_argument("--alerts-churn", type=float, default=1.0, help="alerts: percent of verdicts changing daily")
    p.add_argument("--history-keep", type=int, default=30,
                   help="history: retention test keeps this many days (0: skip)")
    p.add_argument("--history-tiles-only", action="store_true",
                   help="history: only re-time the tile queries on the kept database")
    p.add_argument("--standin-accounts", type=int, default=100, help="standin: accounts in the organisation")
    p.add_argument("--standin-users", type=int, default=50, help="standin: users of the recorded template account")
    p.add_argument("--standin-workers", type=int, default=8, help="standin: extraction threads")
    p.add_argument("--standin-throughput-seconds", type=float, default=5,
                   help="standin: seconds of the stand-in-alone throughput run per action (0: skip)")
    p.add_argument("--standin-rerecord", action="store_true",
                   help="standin: record the template account again (else reuse bench/.state/standin-*.json)")
    p.add_argument("--dagscale-accounts", default="200",
                   help="dagscale: comma-separated mapped account counts, one DAG run each")
    p.add_argument("--dagscale-users", type=int, default=50, help="dagscale: users of the stand-in's template account")
    p.add_argument("--dagscale-accounts-per-task", type=int, default=1,
                   help="dagscale: Variable iam_audit_accounts_per_task (accounts per mapped extract task)")
    p.add_argument("--dagscale-noop-tasks", type=int, default=0,
                   help="dagscale: first run a no-op DAG of this many mapped tasks (Airflow's per-task overhead)")
    p.add_argument("--dagscale-noop-only", action="store_true", help="dagscale: only the no-op DAG")
    p.add_argument("--dagscale-pool-slots", type=int, default=16, help="dagscale: slots of the pool iam_audit_aws")
    p.add_argument("--dagscale-timeout", type=float, default=3600, help="dagscale: seconds to wait for the run")
    p.add_argument("--worker-concurrency", type=int, default=None,
                   help="dagscale/e2e: [celery] worker_concurrency (default: parallelism / celery workers)")
    p.add_argument("--airflow-setting", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="dagscale: an Airflow setting for every component, e.g. scheduler.max_tis_per_query=64 "
                        "(repeatable)")
    p.add_argument("--history-finish", action="store_true",
                   help="history: upgrade the kept database of a stopped run to the current schema, then "
                        "sizes, tiles and retention (--history-keep)")
    p.add_argument("--history-log", default=None, help="history: the stopped run's log (with --history-finish)")
    p.add_argument("--exports-accounts", type=int, default=300, help="exports: synthetic accounts")
    p.add_argument("--exports-users", type=int, default=100, help="exports: synthetic users per account")
    p.add_argument("--output", default=str(RESULTS_DIR / "latest.json"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    import signal

    # SIGTERM runs the stages' cleanup (emulators, Airflow processes) like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise SystemExit(f"unknown stages {unknown}; known: {STAGES}")
    out_path = Path(args.output)
    results: dict = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                     "arguments": vars(args), "stages": {}}
    # Keep stages of an earlier run that this run does not redo (e.g. `--stages curve`).
    if out_path.exists():
        try:
            previous = json.loads(out_path.read_text())
            for name, value in previous.get("stages", {}).items():
                if name not in stages:
                    results["stages"][name] = {**value, "from_earlier_run": previous.get("started_at")}
        except (ValueError, OSError):
            pass
    t0 = time.perf_counter()
    prepared = []
    for stage in stages:
        s0 = time.perf_counter()
        try:
            if stage == "calls":
                from stage_extract import run_extraction

                res, prepared = run_extraction(args.accounts, args.users, args.workers, keep_prepared=True)
            elif stage == "load":
                from stage_load import run_load

                if not prepared:
                    from stage_extract import run_extraction

                    _, prepared = run_extraction(3, args.users, args.workers, keep_prepared=True)
                res = run_load(prepared, args.load_accounts)
            elif stage == "checks":
                from stage_checks import run_checks

                res = run_checks(args.check_accounts, args.check_users, with_plans=not args.no_plans)
            elif stage == "scale":
                from stage_extract import run_extraction

                res, _ = run_extraction(args.scale_accounts, args.scale_users, args.scale_workers, prepare=20,
                                        time_limit=args.scale_time_limit)
            elif stage == "e2e":
                from stage_e2e import run_e2e

                res = run_e2e(args.e2e_accounts, args.e2e_users, args.parallelism, prowler=not args.no_prowler,
                              executor=args.executor, celery_workers=args.celery_workers)
            elif stage == "standin":
                from stage_standin import run_standin

                res = run_standin(args.standin_accounts, args.standin_users, args.standin_workers,
                                  args.standin_throughput_seconds, args.standin_rerecord)
            elif stage == "dagscale":
                from stage_dag_scale import run_dag_scale

                res = {"runs": []}
                for n in args.dagscale_accounts.split(","):
                    try:
                        res["runs"].append(run_dag_scale(
                            int(n), args.dagscale_users, args.parallelism, executor=args.executor,
                            celery_workers=args.celery_workers, worker_concurrency=args.worker_concurrency,
                            accounts_per_task=args.dagscale_accounts_per_task, noop_tasks=args.dagscale_noop_tasks,
                            run_dag=not args.dagscale_noop_only,
                            airflow_settings=airflow_settings(args.airflow_setting),
                            pool_slots=args.dagscale_pool_slots, timeout=args.dagscale_timeout))
                    except Exception as exc:  # noqa: BLE001 - keep the sizes already measured
                        traceback.print_exc()
                        res["runs"].append({"accounts": int(n), "error": f"{type(exc).__name__}: {exc}"})
                    results["stages"][stage] = res
                    _write(results, out_path)  # after every size: a later failure keeps what was measured
            elif stage == "curve":
                res = run_curve(args)
            elif stage == "exports":
                from stage_exports import run_exports

                res = run_exports(args.exports_accounts, args.exports_users)
            elif stage == "history":
                from stage_history import finish_history, retime_tiles, run_history

                if args.history_finish:
                    res = finish_history(args.history_keep or None, args.history_log)
                elif args.history_tiles_only:
                    res = retime_tiles()
                else:
                    res = run_history(args.history_accounts, args.history_users, args.history_days,
                                      args.history_churn, args.history_keep or None)
            elif stage == "alerts":
                from stage_alerts import run_alerts_bench

                res = run_alerts_bench(args.alerts_accounts, args.alerts_users, args.alerts_days, args.alerts_churn)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next stage
            traceback.print_exc()
            res = {"error": f"{type(exc).__name__}: {exc}"}
        res["stage_seconds"] = round(time.perf_counter() - s0, 1)
        results["stages"][stage] = res
        _write(results, out_path)  # after every stage: a crash keeps what was measured
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    from report import render_markdown

    _write(results, out_path)
    md = render_markdown(results)
    out_path.with_suffix(".md").write_text(md)
    print()
    print(md)
    log(f"results: {out_path} and {out_path.with_suffix('.md')}")
    return 0


def airflow_settings(items: list[str]) -> dict[str, str]:
    """["scheduler.max_tis_per_query=64"] -> {"AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "64"}"""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, option = key.partition(".")
        if not (sep and dot and section and option):
            raise SystemExit(f"--airflow-setting {item!r}: expected SECTION.KEY=VALUE")
        out[f"AIRFLOW__{section.upper()}__{option.upper()}"] = value
    return out


def run_curve(args) -> dict:
    """Cost against size: checks over accounts x users; extraction calls and time over users per account."""
    from stage_checks import run_checks
    from stage_extract import run_extraction

    checks = []
    for accounts in [int(x) for x in args.curve_accounts.split(",")]:
        for users in [int(x) for x in args.curve_users.split(",")]:
            if accounts * users > args.curve_max_users:
                continue
            r = run_checks(accounts, users, with_plans=False)
            checks.append({"accounts": accounts, "users_per_account": users,
                           "staging_rows": r["snapshot"]["total_rows"],
                           "insert_seconds": r["snapshot"]["insert_seconds"],
                           "checks_seconds": r["total_seconds"], "scan_seconds": r["scan_seconds"],
                           "verdicts": r["verdicts_written"], "write_floor_seconds": r["write_floor_seconds"],
                           "ratio_to_scan": r["ratio_total_to_scan"]})
    extraction = []
    for users in [int(x) for x in args.curve_users.split(",")]:
        r, _ = run_extraction(4, users, 4)
        extraction.append({"accounts": 4, "users_per_account": users,
                           "calls_per_account": r["calls_per_account_mean"],
                           "budget": r["budget"]["example"]["budget"] if r["budget"]["example"] else None,
                           "gaad_pages": r["budget"]["example"]["gaad_pages"] if r["budget"]["example"] else None,
                           "seconds_per_account_median": r["seconds_per_account"]["median"],
                           "extraction_seconds": r["extraction_seconds"]})
    return {"checks": checks, "extraction": extraction}


def _write(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
