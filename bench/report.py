"""Render bench results (the JSON of run.py) as one markdown report."""

from __future__ import annotations


def _row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _ok(flag) -> str:
    return "met" if flag else "NOT met"


def render_markdown(r: dict) -> str:
    m = r["machine"]
    st = r["stages"]
    out = [f"# make bench: {r['started_at']}", "",
           f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; "
           f"load average at start {m['load_average_at_start']} (the machine is shared).", ""]

    out += ["## Summary", "", _row("stage", "measure", "value", "target", "status"),
            _row("---", "---", "---", "---", "---")]
    c = st.get("calls", {})
    if "budget" in c:
        b = c["budget"]
        out.append(_row("calls", f"audited AWS calls per account ({c['accounts']} accounts x "
                                 f"{c['users_per_account']} users)",
                        f"{c['calls_per_account_mean']} (worst overrun {b['worst_overrun']:+d})",
                        "≤ 10 + regions + GAAD pages + users with keys",
                        f"{_ok(b['accounts_within_budget'] == b['accounts_checked'])} "
                        f"({b['accounts_within_budget']}/{b['accounts_checked']})"))
    cp = st.get("calls_prototype", {})
    if "budget" in cp:
        b = cp["budget"]
        out.append(_row("calls (prototype credential report)", "audited AWS calls per account, same organisation",
                        f"{cp['calls_per_account_mean']} (worst overrun {b['worst_overrun']:+d})",
                        "same budget", f"{_ok(b['accounts_within_budget'] == b['accounts_checked'])} "
                        f"({b['accounts_within_budget']}/{b['accounts_checked']})"))
    ld = st.get("load", {})
    if "ratio_median" in ld:
        out.append(_row("load", f"write_account / raw COPY throughput ({ld['rows']} rows)",
                        f"{ld['ratio_median']} ({ld['rows_per_second_median']['write_account']} vs "
                        f"{ld['rows_per_second_median']['raw_copy']} rows/s)", "≥ 0.70", _ok(ld["target_met"])))
        for name, ratio in ld.get("prototype_ratios_median", {}).items():
            out.append(_row("load (prototype)", name, ratio, "≥ 0.70", _ok(ratio >= 0.70)))
    ck = st.get("checks", {})
    if "total_seconds" in ck:
        out.append(_row("checks", f"all checks / one scan ({ck['accounts']} x {ck['users_per_account']})",
                        f"{ck['total_seconds']} s / {ck['scan_seconds']} s = {ck['ratio_total_to_scan']}x",
                        "≤ 10x", _ok(ck["target_met"])))
        out.append(_row("checks", "all checks / (scan + writing the verdicts alone)",
                        f"{ck['ratio_total_to_scan_plus_write_floor']}x "
                        f"({ck['verdicts_written']} verdicts, write floor {ck['write_floor_seconds']} s)", "-", "-"))
    ex = st.get("exports", {})
    if "ocsf" in ex:
        for name, label in (("ocsf", "OCSF export"), ("evidence", "evidence pack CSV + summary")):
            part = ex[name]
            out.append(_row("exports", f"{label} / the day's checks ({ex['accounts']} x {ex['users_per_account']}, "
                                       f"{part['count']} {'findings' if name == 'ocsf' else 'verdicts'})",
                            f"{part['seconds']} s / {ex['checks_seconds']} s = {ex[name + '_to_checks']}x, "
                            f"peak {part['peak_rss_mb']} MB", "peak < 500 MB", _ok(part["peak_rss_mb"] < 500)))
    for key in ("scale", "scale_prototype"):
        sc = st.get(key, {})
        if "extraction_seconds" in sc:
            out.append(_row(key, f"discover {sc['discovered_accounts']} accounts x {sc['users_per_account']} users, "
                                 f"extract {sc.get('extracted_accounts', sc['discovered_accounts'])} "
                                 f"({sc['workers']} threads)",
                            f"{sc['total_seconds']} s ({sc['seconds_per_account']['wall_per_account']} s/account), "
                            f"peak RSS {sc['peak_rss_mib']['extracting_process']} MiB "
                            f"(emulator {sc['peak_rss_mib']['emulator']} MiB), {sc['failed_accounts']} failed",
                            "5,000 accounts must run", "see Organisation size"))
    sc = st.get("scale", {})
    si = st.get("standin", {})
    if "extraction_seconds" in si:
        alone = si.get("standin_alone", {})
        out.append(_row("standin", f"extract {si['discovered_accounts']} accounts x {si['users_per_account']} users "
                                   f"against the AWS stand-in ({si['workers']} threads)",
                        f"{si['extraction_seconds']} s, "
                        f"{si['extracting_process_cpu_seconds_per_account']} CPU-s/account "
                        f"(stand-in {si['standin_cpu_seconds_per_account']}), {si['requests_per_second_served']} "
                        f"requests/s served, {si['failed_accounts']} failed", "-", "-"))
        for action, v in alone.items():
            out.append(_row("standin", f"stand-in alone: {action} ({v['response_bytes']} bytes)",
                            f"{v['requests_per_second']} requests/s", "≫ emulator's ~30", "-"))
    al = st.get("alerts", {})
    if "steady_day" in al:
        sd = al["steady_day"]
        out.append(_row("alerts", f"every shipped rule + ledger + delivery (no-op sender), steady day "
                                  f"({al['accounts']} x {al['users']}, {al['days']} days, {al['churn_pct']} % churn, "
                                  f"{sum(sd['alerts'].values())} alerts)",
                        f"{sd['seconds']} s = {round(100 * sd['ratio_to_checks'], 1)} % of the day's checks "
                        f"({al['checks_seconds']} s); rules alone {sd['rules_seconds']} s",
                        "≤ 5 s and ≤ 10 %", _ok(sd["seconds"] <= 5 and sd["ratio_to_checks"] <= 0.10)))
    e = st.get("e2e", {})
    if "ratios" in e:
        ra = e["ratios"]
        out.append(_row("e2e", f"Prowler / DAG wall time ({e['accounts']} x {e['users_per_account']}, "
                               f"parallelism {e['parallelism']})",
                        f"{ra['wall_prowler_over_dag']}x ({e['prowler']['wall_seconds']} s vs "
                        f"{e['dag']['wall_seconds']} s)",
                        "≥ 5x", _ok(ra["wall_prowler_over_dag"] >= 5)))
        out.append(_row("e2e", "Prowler / DAG AWS calls (emulator)",
                        f"{ra['calls_prowler_over_dag']}x ({e['prowler']['calls']['total']} vs "
                        f"{e['dag']['calls']['total']}); without S3 {ra['calls_prowler_over_dag_excluding_s3']}x",
                        "≥ 5x", _ok(ra["calls_prowler_over_dag"] >= 5)))
    out.append("")

    for name, value in st.items():
        if "error" in value:
            out += [f"**Stage {name} failed:** `{value['error']}`", ""]

    if "calls_per_account_by_operation" in c:
        out += ["## Calls per account by operation", "",
                f"{c['accounts']} accounts x {c['users_per_account']} users, extraction {c['extraction_seconds']} s "
                f"with {c['workers']} threads. Hook: botocore `before-call` in the extracting process (one per API "
                "call); emulator: `/_emulator/calls` (one per HTTP request, retries included).", "",
                _row("operation", "hook", "emulator"), _row("---", "---:", "---:")]
        for op, v in c["calls_per_account_by_operation"].items():
            out.append(_row(op, v["hook"], v["emulator"]))
        out.append(_row("S3 writes (raw snapshot, caller's bucket)",
                        ", ".join(f"{k} {v}" for k, v in c["caller_calls"]["s3_per_account"].items()), ""))
        ex = c["budget"]["example"]
        out += ["", f"Budget: {c['budget']['formula']}.", "",
                f"Example account {ex['account_id']}: 10 + {ex['enabled_regions']} regions + {ex['gaad_pages']} "
                f"GAAD pages + {ex['users_with_keys']} users with keys = **{ex['budget']}**; made "
                f"**{ex['calls']}** (emulator saw {ex['emulator_calls']}).", ""]

    if "seconds" in ld:
        out += ["## Load", "", _row("method", "seconds per round", "rows/s (median)"), _row("---", "---", "---:")]
        for k in ld["seconds"]:
            rate = ld["rows_per_second_median"]
            ratio = "" if k == "raw_copy" else f" (ratio {round(rate[k] / rate['raw_copy'], 3)})"
            out.append(_row(k, ", ".join(str(x) for x in ld["seconds"][k]), f"{rate[k]}{ratio}"))
        out.append("")

    if "checks" in ck:
        snap = ck["snapshot"]
        out += ["## Checks", "",
                f"Synthetic snapshot: {ck['accounts']} accounts x {ck['users_per_account']} users, "
                f"{snap['total_rows']} staging rows ({snap['size']}), inserted in {snap['insert_seconds']} s. "
                f"Full sequential scan of every staging table the checks read: {ck['scan_seconds']} s.", "",
                _row("check", "seconds", "verdicts", "x its tables' scan", "quadratic nested loop",
                     "costliest plan nodes (ms)"),
                _row("---", "---:", "---:", "---:", "---", "---")]
        for logic, v in sorted(ck["checks"].items(), key=lambda kv: -kv[1]["seconds"]):
            plans = ck.get("plans", {}).get(logic, [])
            costly = "; ".join(f"{n['node']} {n['ms']}" for p in plans if p["statement"] == "INSERT"
                               for n in p["costliest_nodes_ms"][:3])
            out.append(_row(logic, v["seconds"], v["verdicts"], v["ratio_to_its_scan"],
                            "yes" if v.get("quadratic_nested_loop") else "no", costly))
        out.append(_row("**total**", ck["total_seconds"], ck["verdicts_written"], ck["ratio_total_to_scan"], "", ""))
        out.append("")
        if ck.get("plans"):
            types: dict[str, int] = {}
            for plans in ck["plans"].values():
                for p in plans:
                    for t, n in p["node_types"].items():
                        types[t] = types.get(t, 0) + n
            out += ["Plan node types over all checks (EXPLAIN ANALYZE, BUFFERS; full plans in the JSON): "
                    + ", ".join(f"{t} {n}" for t, n in sorted(types.items(), key=lambda kv: -kv[1])), ""]

    if "extraction_seconds" in sc:
        out += ["## Organisation size", "",
                f"{sc['accounts']} emulated accounts x {sc['users_per_account']} users "
                f"(seeded in {sc['seed_seconds']} s): "
                f"discovery {sc['discovery_seconds']} s, extraction {sc['extraction_seconds']} s with "
                f"{sc['workers']} threads ({sc['seconds_per_account']['wall_per_account']} s of wall per account, "
                f"median {sc['seconds_per_account']['median']} s per account), {sc['failed_accounts']} failed; "
                f"peak RSS {sc['peak_rss_mib']['extracting_process']} MiB extracting, "
                f"{sc['peak_rss_mib']['emulator']} MiB emulator; "
                f"{sc['calls_total']['emulator_all']} emulator requests."
                + (f" Time box {sc['time_limit_seconds']} s: {sc['extracted_accounts']} of {sc['discovered_accounts']} "
                   f"accounts extracted, {sc['accounts_per_second']} accounts/s; projected "
                   f"{sc['projected_seconds']}" if sc.get("time_limit_seconds") else ""), ""]

    if "dag" in e:
        d, n = e["dag"], e["airflow_noop"]
        out += ["## End to end vs Prowler", "",
                f"{e['accounts']} accounts x {e['users_per_account']} users; LocalExecutor parallelism "
                f"{e['parallelism']}, metadata on PostgreSQL; Prowler {e['parallelism']} processes at a time.", "",
                _row("", "wall s", "AWS calls", "calls/account", "notes"), _row("---", "---:", "---:", "---:", "---"),
                _row("DAG aws_iam_cis", d["wall_seconds"], d["calls"]["total"], d["calls"]["per_account"],
                     f"run {d['dag_run_state']}, {d['task_instances']} task instances, {d['failed']} failed")]
        if "prowler" in e and "wall_seconds" in e["prowler"]:
            p = e["prowler"]
            out.append(_row("Prowler cis_3.0_aws", p["wall_seconds"], p["calls"]["total"], p["calls"]["per_account"],
                            f"{p['median_seconds_per_account']} s per account process, "
                            f"{p['failed_processes']} non-zero exits"))
        out += ["", f"Airflow per-task overhead (no-op DAG of {n['task_instances']} tasks): "
                f"{n['wall_seconds']} s wall, {n['wall_seconds_per_task']} s per task; median queued→start "
                f"{n['median_queued_to_start_seconds']} s, median run {n['median_task_duration_seconds']} s.", "",
                _row("DAG task", "count", "median run s", "median queued→start s", "states"),
                _row("---", "---:", "---:", "---:", "---")]
        for k, v in d["by_task"].items():
            out.append(_row(k, v["count"], v["median_duration_seconds"], v["median_queued_to_start_seconds"],
                            ", ".join(v["states"])))
        out.append("")

    cv = st.get("curve", {})
    if "checks" in cv:
        out += ["## Growth", "", _row("accounts", "users/acct", "staging rows", "checks s", "scan s", "verdicts",
                                      "write floor s", "x scan"),
                _row(*["---:"] * 8)]
        for x in cv["checks"]:
            out.append(_row(x["accounts"], x["users_per_account"], x["staging_rows"], x["checks_seconds"],
                            x["scan_seconds"], x["verdicts"], x["write_floor_seconds"], x["ratio_to_scan"]))
        out += ["", _row("users/acct", "calls/account", "budget", "GAAD pages", "s per account (median)"),
                _row(*["---:"] * 5)]
        for x in cv["extraction"]:
            out.append(_row(x["users_per_account"], x["calls_per_account"], x["budget"], x["gaad_pages"],
                            x["seconds_per_account_median"]))
        out.append("")
    pt = st.get("prototype", {})
    if "sizes" in pt:
        out += ["## Prototyped check rewrites", "", _row("check", "accounts x users", "shipped s", "prototype s",
                                                       "speedup", "verdicts", "differing rows"),
                _row("---", "---", "---:", "---:", "---:", "---:", "---:")]
        for size in pt["sizes"]:
            for logic, v in size["prototypes"].items():
                out.append(_row(logic, f"{size['accounts']} x {size['users_per_account']}", v["shipped_seconds"],
                                v["prototype_seconds"], v["speedup"], v["verdicts"], v["differing_rows"]))
        out.append("")
    return "\n".join(out)
