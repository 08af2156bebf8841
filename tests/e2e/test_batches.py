"""The whole DAG with several accounts per extract task (Variable iam_audit_accounts_per_task): fewer
mapped instances, each named by its accounts, and one account's permanent failure is that account's
alone (its verdicts say error; the other accounts of its batch have the verdicts of a clean run)."""

from __future__ import annotations

import pytest
from iam_audit_dev.devenv.runner import metadata_url
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import account_of
from tests.e2e.conftest import fetch_results

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def clean_run(first_run):
    result, verdicts, _ = first_run
    assert result.state == "success", result.log_file
    return verdicts


def mapped_extracts(stack, run_id: str) -> list[tuple[int, str, str]]:
    engine = create_engine(metadata_url(stack.env), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT map_index, state, rendered_map_index FROM task_instance WHERE dag_id = 'aws_iam_cis' "
                "AND run_id = :r AND task_id = 'extract_account' ORDER BY map_index"), {"r": run_id})]
    finally:
        engine.dispose()


def test_batched_extraction_keeps_failures_per_account(clean_run, e2e_stack, run, today):
    emulator = e2e_stack.emulator
    accounts = [a["id"] for a in emulator.manifest["accounts"]]
    denied = account_of(emulator.manifest, "none")
    emulator.set_faults([{"service": "sts", "action": "AssumeRole", "error": "AccessDenied",
                          "target_account_id": denied}])
    try:
        result = run(today, AIRFLOW_VAR_IAM_AUDIT_ACCOUNTS_PER_TASK="3")
    finally:
        emulator.clear_faults()
    assert result.state == "failed"

    extracts = mapped_extracts(e2e_stack, result.run_id)
    assert len(extracts) == -(-len(accounts) // 3), extracts  # 4 accounts: 2 mapped instances, not 4
    failed = [e for e in extracts if e[1] == "failed"]
    assert len(failed) == 1 and denied in failed[0][2], extracts
    assert all(e[1] == "success" for e in extracts if e not in failed), extracts
    labels = " ".join(e[2] for e in extracts)
    assert all(a in labels for a in accounts), labels  # every account is named by its task
    assert [t for t in result.failed_tasks if t.startswith("extract_account")] == [f"extract_account[{failed[0][0]}]"]
    log = result.log_file.read_text(errors="replace")
    assert f"account {denied}: could not assume" in log

    verdicts = fetch_results(e2e_stack, today)
    mine = {k: v for k, v in verdicts.items() if k[2] == denied}
    assert mine and {s for s, _ in mine.values()} == {"error"}
    others = {k: v[0] for k, v in verdicts.items() if k[2] != denied}
    before = {k: v[0] for k, v in clean_run.items() if k[2] != denied}
    assert others == before  # the batch-mates of the failed account: the verdicts of the clean run
