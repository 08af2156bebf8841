"""Load stage: load.write_account (one transaction and one COPY per table per account) against a raw
COPY ... FROM STDIN of exactly the same rows into the same tables, both in the same run.

The rows are real: accounts extracted from the emulator and transformed by load.prepare_account,
then cloned under new account ids to reach the wanted number of accounts.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import date

from common import BENCH_DB, fresh_database, log


def clone_accounts(prepared: list, accounts: int) -> list:
    out = []
    for i in range(accounts):
        src = prepared[i % len(prepared)]
        out.append(dataclasses.replace(src, account_id=f"{900000000000 + i:012d}"))
    return out


def _truncate(conn) -> None:
    from iam_audit.ingest.load import STAGING_TABLES

    conn.execute("TRUNCATE " + ", ".join(f"iam_stage.{t}" for t in STAGING_TABLES))
    conn.commit()


def _raw_copy(conn, snapshot_date: str, accounts: list) -> None:
    """One transaction, one COPY per table for every account's rows: the floor write_account is held to."""
    from iam_audit.ingest.transform import COLUMNS

    with conn.transaction(), conn.cursor() as cur:
        with cur.copy("COPY iam_stage.accounts (snapshot_date, account_id, account_name, extracted_at, run_id, "
                      "raw_prefix) FROM STDIN") as copy:
            for p in accounts:
                copy.write_row((snapshot_date, p.account_id, p.account_name, p.extracted_at, p.run_id,
                                p.raw_prefix))
        with cur.copy("COPY iam_stage.extraction_status (snapshot_date, account_id, dataset, status, error_code, "
                      "error_message, row_count) FROM STDIN") as copy:
            for p in accounts:
                key = (snapshot_date, p.account_id)
                for row in p.status_rows:
                    copy.write_row(key + row)
        for table, columns in COLUMNS.items():
            column_list = ", ".join(("snapshot_date", "account_id") + columns)
            with cur.copy(f"COPY iam_stage.{table} ({column_list}) FROM STDIN") as copy:
                for p in accounts:
                    key = (snapshot_date, p.account_id)
                    for row in p.tables.get(table, ()):
                        copy.write_row(key + row)


def _write_account(conn, snapshot_date: str, accounts: list) -> None:
    """The shipped path: load.write_accounts in batches of 25 accounts, as ingest.staging.load_snapshot does
    (one transaction per batch; each account all-or-nothing)."""
    from iam_audit.ingest.load import write_accounts

    for start in range(0, len(accounts), 25):
        write_accounts(conn, snapshot_date, accounts[start:start + 25])


def _write_account_single(conn, snapshot_date: str, accounts: list) -> None:
    """Before change B: one transaction per account."""
    from iam_audit.ingest.load import write_account

    for p in accounts:
        write_account(conn, snapshot_date, p)


def _write_account_sync_off(conn, snapshot_date: str, accounts: list) -> None:
    """PROTOTYPE: write_account unchanged, but each account's transaction commits without waiting for
    the WAL flush (SET LOCAL synchronous_commit = off). Still one transaction per account."""
    from iam_audit.ingest.load import write_account

    for p in accounts:
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = off")
            write_account(conn, snapshot_date, p)


VARIANTS = (("raw_copy", _raw_copy), ("write_account", _write_account),
            ("before_change_b_one_account_per_transaction", _write_account_single),
            ("prototype_sync_commit_off", _write_account_sync_off))


def run_load(prepared: list, accounts: int, rounds: int = 3) -> dict:
    snapshot_date = date.today().isoformat()
    clones = clone_accounts(prepared, accounts)
    rows = sum(p.row_count + len(p.status_rows) + 1 for p in clones)
    log(f"load: {accounts} accounts, {rows} rows, {rounds} rounds of raw COPY and write_account")
    conn = fresh_database(BENCH_DB)
    timings: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
    try:
        for _ in range(rounds):
            for name, fn in VARIANTS:
                _truncate(conn)
                conn.execute("CHECKPOINT")
                t0 = time.perf_counter()
                fn(conn, snapshot_date, clones)
                timings[name].append(time.perf_counter() - t0)
        loaded = conn.execute("SELECT count(*) FROM iam_stage.users").fetchone()[0]
    finally:
        conn.close()
    best = {k: min(v) for k, v in timings.items()}
    median = {k: sorted(v)[len(v) // 2] for k, v in timings.items()}
    result = {
        "accounts": accounts,
        "rows": rows,
        "rows_per_account": round(rows / accounts, 1),
        "users_rows_loaded": loaded,
        "seconds": {k: [round(x, 3) for x in v] for k, v in timings.items()},
        "rows_per_second_median": {k: round(rows / v) for k, v in median.items()},
        "rows_per_second_best": {k: round(rows / v) for k, v in best.items()},
        "ratio_median": round(median["raw_copy"] / median["write_account"], 3),
        "ratio_best": round(best["raw_copy"] / best["write_account"], 3),
        "prototype_ratios_median": {k: round(median["raw_copy"] / median[k], 3) for k in median
                                    if k.startswith("prototype")},
        "target_ratio": 0.70,
    }
    result["target_met"] = result["ratio_median"] >= 0.70
    log(f"load: write_account {result['rows_per_second_median']['write_account']} rows/s, raw COPY "
        f"{result['rows_per_second_median']['raw_copy']} rows/s, ratio {result['ratio_median']}")
    return result
