"""Seed the compose file's stand-in AWS (the `moto` service) and create the raw-data bucket.

Run by the `moto-init` service: waits for the emulator, seeds the demo organisation
(POST /_emulator/seed) and creates the bucket named by AIRFLOW_VAR_IAM_AUDIT_BUCKET.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

import boto3

URL = os.environ.get("EMULATOR_URL", "http://moto:5000")
BUCKET = os.environ.get("AIRFLOW_VAR_IAM_AUDIT_BUCKET", "iam-audit-raw")


def main() -> None:
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"{URL}/_emulator/health", timeout=2) as resp:  # noqa: S310
                if json.loads(resp.read()).get("ok"):
                    break
        except OSError:
            pass
        time.sleep(1)
    else:
        raise SystemExit(f"emulator at {URL} not healthy")
    body = json.dumps({"accounts": int(os.environ.get("SEED_ACCOUNTS", "5")),
                       "users": int(os.environ.get("SEED_USERS", "8")), "seed": 42}).encode()
    request = urllib.request.Request(f"{URL}/_emulator/seed", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as resp:  # noqa: S310
        manifest = json.loads(resp.read())
    s3 = boto3.client("s3", endpoint_url=URL, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106
    s3.create_bucket(Bucket=BUCKET)
    accounts = ", ".join(f"{a['id']} {a['name']}" for a in manifest["accounts"])
    print(f"emulator seeded: {accounts}; bucket s3://{BUCKET}")


if __name__ == "__main__":
    main()
