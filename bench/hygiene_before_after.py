"""Time every hygiene_* check on the checks stage's synthetic snapshot, for one source tree.

    nice -n 19 .venv/bin/python bench/hygiene_before_after.py <tree> <accounts> <users> <tag>

<tree> is a checkout (or `git archive <commit> src bench` unpacked) whose src/iam_audit/
(with its sql/) is used; run it once for the branch point and once for the branch, same sizes, to get
docs/iam-hygiene-benchmark.md's before/after columns. Prints one JSON line. Uses its own
embedded PostgreSQL in /tmp/h29bench/pg (left running, as bench/common.py's is).
"""

import json
import sys
import time

tree, accounts, users, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sys.path[:0] = [f"{tree}/src", f"{tree}/tools", f"{tree}/bench"]

import psycopg  # noqa: E402
from iam_audit_dev.devenv.postgres import start_postgres  # noqa: E402
from stage_checks import build_snapshot  # noqa: E402

from iam_audit.database import apply_schema, run_check  # noqa: E402
from iam_audit.evaluate.catalogue import load_catalogue  # noqa: E402

pg = start_postgres("/tmp/h29bench/pg")
name = f"hb_{tag}"
with psycopg.connect(pg.conninfo(), autocommit=True) as c:
    c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    c.execute(f'CREATE DATABASE "{name}"')
conn = pg.connect(name)
apply_schema(conn)
conn.commit()
conn.autocommit = True
info = build_snapshot(conn, accounts, users, "2026-11-01")
conn.autocommit = False
logics = [c.logic for c in load_catalogue().checks if c.logic.startswith("hygiene_")]
seconds = {}
for logic in logics:
    t0 = time.perf_counter()
    run_check(conn, logic, "2026-11-01")
    seconds[logic] = round(time.perf_counter() - t0, 2)
counts = dict(conn.execute("SELECT control_logic, count(*) FROM aws_policy_results GROUP BY 1").fetchall())
print(json.dumps({"tag": tag, "accounts": accounts, "users": users, "rows": info["total_rows"],
                  "seconds": seconds, "total": round(sum(seconds.values()), 2),
                  "verdicts": {k: counts.get(k) for k in logics}}))
conn.close()
with psycopg.connect(pg.conninfo(), autocommit=True) as c:
    c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
