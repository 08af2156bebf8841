"""GetAccountAuthorizationDetails of an account using large AWS-managed policies: raw object size and
peak memory of extraction and of the load's decode + transform, with and without dropping the documents
of the non-default versions of AWS-managed policies (extract._aws_managed_default_versions_only).

    .venv/bin/python bench/gaad_memory.py [--json bench/results/gaad_memory.json]

One emulated account; its `developers` group holds ReadOnlyAccess (given 190 versions, as in AWS) and
its `app-runtime` role SecurityAudit (94) and ViewOnlyAccess (46). Each measurement runs in a fresh
process (ru_maxrss only grows): peak Python allocations (tracemalloc) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

KEY_ID, SECRET = "AKIAGAADMEMORYBENCH1", "gaad-memory-bench-secret"
POLICIES = {"ReadOnlyAccess": 190, "SecurityAudit": 94, "job-function/ViewOnlyAccess": 46}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _extract(url: str, account_id: str, variant: str, out: str) -> dict:
    import boto3

    from iam_audit.aws import AwsTarget
    from iam_audit.ingest import extract, layout

    if variant == "full":
        extract._aws_managed_default_versions_only = lambda page: None  # what the extract did before
    target = AwsTarget(session=boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                             region_name="us-east-1"), endpoint_url=url, region_name="us-east-1")
    session = target.assume_role(f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole")
    iam = target.client("iam", session=session)
    rss_before = _rss_mib()
    tracemalloc.start()
    started = time.perf_counter()
    payload = extract.get_authorization_details(iam)
    blob = layout.encode(payload)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    Path(out).write_bytes(blob)
    versions = sum(len(p.get("PolicyVersionList", [])) for p in payload["Policies"])
    documents = sum(1 for p in payload["Policies"] for v in p.get("PolicyVersionList", []) if "Document" in v)
    return {"variant": variant, "stage": "extract + encode", "seconds": round(seconds, 2),
            "tracemalloc_peak_mib": round(peak / 2**20, 1), "rss_before_mib": round(rss_before, 1),
            "rss_peak_mib": round(_rss_mib(), 1), "policy_versions": versions, "documents_kept": documents,
            "object_gzip_bytes": len(blob),
            "object_json_bytes": len(json.dumps(payload, default=str, sort_keys=True).encode())}


def _load(path: str, variant: str) -> dict:
    from iam_audit.ingest import layout, transform

    blob = Path(path).read_bytes()
    rss_before = _rss_mib()
    tracemalloc.start()
    started = time.perf_counter()
    rows = transform.authorization_details(layout.decode(blob, path))
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"variant": variant, "stage": "decode + transform", "seconds": round(seconds, 2),
            "tracemalloc_peak_mib": round(peak / 2**20, 1), "rss_before_mib": round(rss_before, 1),
            "rss_peak_mib": round(_rss_mib(), 1), "managed_policies_rows": len(rows["managed_policies"])}


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        kind, *rest = a.child
        result = _extract(*rest) if kind == "extract" else _load(*rest)
        print(json.dumps(result))
        return 0

    import boto3
    from iam_audit_dev.emulator.process import start_emulator

    emulator = start_emulator()
    try:
        manifest = emulator.seed(accounts=1, users=8, seed=42)
        account_id = next(x["id"] for x in manifest["accounts"] if x["id"] != manifest["management_account_id"])
        sts = boto3.client("sts", endpoint_url=emulator.url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                           aws_secret_access_key=SECRET)
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
                                RoleSessionName="bench")["Credentials"]
        iam = boto3.client("iam", endpoint_url=emulator.url, region_name="us-east-1",
                           aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                           aws_session_token=creds["SessionToken"])
        for name in ("SecurityAudit", "job-function/ViewOnlyAccess"):
            iam.attach_role_policy(RoleName="app-runtime", PolicyArn=f"arn:aws:iam::aws:policy/{name}")
        documents = {name: emulator.set_aws_managed_policy_versions(account_id, name, count)
                     for name, count in POLICIES.items()}
        results = []
        with tempfile.TemporaryDirectory() as tmp:
            for variant in ("full", "trimmed"):
                blob = os.path.join(tmp, f"{variant}.json.gz")
                results.append(_child(["--child", "extract", emulator.url, account_id, variant, blob]))
                results.append(_child(["--child", "load", blob, variant]))
    finally:
        emulator.stop()
    print(f"account {account_id}: " + ", ".join(f"{n} {d['versions']} versions ({d['document_bytes'] / 1e6:.1f} MB)"
                                               for n, d in documents.items()))
    columns = ("variant", "stage", "seconds", "tracemalloc_peak_mib", "rss_before_mib", "rss_peak_mib",
               "object_gzip_bytes", "object_json_bytes", "documents_kept")
    print(" | ".join(columns))
    for r in results:
        print(" | ".join(str(r.get(c, "")) for c in columns))
    if a.json:
        Path(a.json).write_text(json.dumps({"policies": documents, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main(sys.argv[1:]))
