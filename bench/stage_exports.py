"""Exports stage: the OCSF export and the evidence pack's CSV of a synthetic day, against that day's checks.

1. synthetic.sql fills iam_stage.* for N accounts x M users; every check runs (the baseline: the
   day's checks time, measured in the same run on the same data);
2. a child process streams the OCSF export of the day to a file; another writes the evidence pack's
   controls, verdicts and summary (the part that grows with the verdicts; the raw objects' hashing
   reads S3, which a synthetic snapshot does not have). Each child reports its wall time and peak
   resident memory (ru_maxrss), so the figures are the export's own, not the bench process's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from common import BENCH_DB, BENCH_DIR, fresh_database, log, postgres
from stage_checks import build_snapshot

CHILD = r"""
import json, resource, sys, time
from datetime import date
from pathlib import Path
sys.path.insert(0, {bench!r})
from common import postgres
kind, day, out = sys.argv[1], date.fromisoformat(sys.argv[2]), Path(sys.argv[3])
conn = postgres().connect({db!r})
t0 = time.perf_counter()
if kind == "ocsf":
    from iam_audit.export.ocsf import export_to_file
    count = export_to_file(conn, day, out)
else:
    from iam_audit.export.evidence import write_controls, write_summary, write_verdicts
    out.mkdir(parents=True, exist_ok=True)
    write_controls(conn, out / "controls.csv", day, None)
    count = write_verdicts(conn, out / "verdicts.csv", day, None)
    write_summary(conn, out / "summary.html", day, None, {{"objects": [], "manifests": [],
                                                          "accounts_without_snapshot": []}})
seconds = time.perf_counter() - t0
print(json.dumps({{"count": count, "seconds": round(seconds, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}}))
"""


def _child(kind: str, day: str, out: Path) -> dict:
    code = CHILD.format(bench=str(BENCH_DIR), db=BENCH_DB)
    done = subprocess.run([sys.executable, "-c", code, kind, day, str(out)], check=True, capture_output=True,
                          text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["output_mb"] = round(sum(p.stat().st_size for p in ([out] if out.is_file() else out.iterdir()))
                                / 1e6, 1)
    return result


def run_exports(accounts: int, users: int) -> dict:
    from iam_audit.database import run_check
    from iam_audit.evaluate.catalogue import load_catalogue

    day = date.today().isoformat()
    catalogue = load_catalogue()
    log(f"exports: synthetic snapshot of {accounts} accounts x {users} users, then every check")
    conn = fresh_database(BENCH_DB)
    try:
        conn.autocommit = False
        build_snapshot(conn, accounts, users, day)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        conn.autocommit = False
        t0 = time.perf_counter()
        for check in catalogue.checks:
            run_check(conn, check.logic, day, run_id="bench", frameworks=list(catalogue.frameworks))
            conn.commit()
        checks_seconds = time.perf_counter() - t0
        verdicts = conn.execute("SELECT count(*) FROM aws_policy_results WHERE snapshot_date = %s",
                                (day,)).fetchone()[0]
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    finally:
        conn.close()
    postgres()
    with tempfile.TemporaryDirectory(prefix="bench-exports-") as tmp:
        log("exports: OCSF export")
        ocsf = _child("ocsf", day, Path(tmp) / "findings.ocsf.jsonl.gz")
        log("exports: evidence pack (controls, verdicts, summary)")
        evidence = _child("evidence", day, Path(tmp) / "evidence")
    log(f"exports: checks {checks_seconds:.1f} s; OCSF {ocsf['count']} findings in {ocsf['seconds']} s, "
        f"{ocsf['peak_rss_mb']} MB peak; evidence {evidence['count']} verdicts in {evidence['seconds']} s, "
        f"{evidence['peak_rss_mb']} MB peak")
    return {"accounts": accounts, "users_per_account": users, "verdicts": verdicts,
            "checks_seconds": round(checks_seconds, 1), "ocsf": ocsf, "evidence": evidence,
            "ocsf_to_checks": round(ocsf["seconds"] / checks_seconds, 2),
            "evidence_to_checks": round(evidence["seconds"] / checks_seconds, 2)}
