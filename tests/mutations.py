"""Deliberate defects, applied one at a time to a copy of the tree: each must make its tests fail.

`make test-mutations` (or `python tests/mutations.py`) copies the tree (the working tree, or a git
ref with --ref), checks that the tests named below pass on the unmutated copy, then applies each
mutant alone, runs the tests that must catch it, and restores the file. A mutant whose tests still
pass "survived": the suite lost the power to see that defect, and the command exits 1.

The tests named per mutant are tests of `make test`; `docs/testing.md` records which test caught
each mutant before and after the suite was made faster.

    python tests/mutations.py [--ref REV] [--only M01,M07] [--json out.json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Edit:
    path: str
    old: str  # must occur exactly once in the file
    new: str


@dataclass(frozen=True)
class Mutant:
    id: str
    layer: str
    defect: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]  # pytest node ids or paths, each a test of `make test`


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "M01", "check", "a check passes on NULL: root MFA passes when AccountMFAEnabled is missing",
        (Edit("src/iam_audit/sql/checks/root_mfa.sql",
              "CASE WHEN s.account_mfa_enabled = 1 THEN 'pass'",
              "CASE WHEN coalesce(s.account_mfa_enabled, 1) = 1 THEN 'pass'"),),
        ("tests/checks/test_root_mfa.py", "tests/checks/test_fail_closed.py"),
    ),
    Mutant(
        "M02", "catalogue", "a wrong threshold in one CIS version: v1.5.0 unused credentials at 90 days, not 45",
        (Edit("src/iam_audit/sql/catalogue/frameworks/cis_v1.5.0.yaml",
              "title: Ensure credentials unused for 45 days or greater are disabled, "
              "level: L1, assessment: automated, params: {max_unused_days: 45}}",
              "title: Ensure credentials unused for 45 days or greater are disabled, "
              "level: L1, assessment: automated, params: {max_unused_days: 90}}"),),
        ("tests/checks/test_credentials_unused.py", "tests/checks/test_catalogue_consistency.py",
         "tests/unit/test_catalogue_params.py"),
    ),
    Mutant(
        "M03", "catalogue", "a framework mapping swapped: v5.0.0's numbers of password length and reuse exchanged",
        (Edit("src/iam_audit/sql/catalogue/frameworks/cis_v5.0.0.yaml",
              "{id: '1.7', logic: password_policy_min_length,",
              "{id: '1.8', logic: password_policy_min_length,"),
         Edit("src/iam_audit/sql/catalogue/frameworks/cis_v5.0.0.yaml",
              "{id: '1.8', logic: password_policy_reuse,",
              "{id: '1.7', logic: password_policy_reuse,")),
        ("tests/checks/test_catalogue_consistency.py", "tests/unit/test_controls_doc.py",
         "tests/unit/test_catalogue_params.py"),
    ),
    Mutant(
        "M04", "transform", "a transform drops a field: the credential report's password_last_used",
        (Edit("src/iam_audit/ingest/transform.py",
              "_ts(r.get(\"password_last_used\")), _ts(r.get(\"password_last_changed\")),",
              "None, _ts(r.get(\"password_last_changed\")),"),),
        ("tests/unit/test_transform.py",),
    ),
    Mutant(
        "M05", "load", "a load skips an account: the first account of every batch is never loaded",
        (Edit("src/iam_audit/ingest/staging.py",
              "chunk = accounts[start:start + batch_size]",
              "chunk = accounts[start + 1:start + batch_size]"),),
        ("tests/integration/test_load_failures.py", "tests/integration/test_storage_and_load_faults.py"),
    ),
    Mutant(
        "M06", "extract", "a retry of a permanent error: AccessDenied treated as transient",
        (Edit("src/iam_audit/aws.py",
              "    \"AccessDenied\", \"AccessDeniedException\", \"UnauthorizedOperation\",",
              "    \"AccessDeniedException\", \"UnauthorizedOperation\","),),
        ("tests/integration/test_failure_classes.py", "tests/integration/test_batch_extract.py"),
    ),
    Mutant(
        "M07", "extract", "an extraction that omits a page of results: only the first page is read",
        (Edit("src/iam_audit/ingest/extract.py",
              "            merged[key].extend(page[key])\n    return merged",
              "            merged[key].extend(page[key])\n        break\n    return merged"),),
        ("tests/integration/test_extract.py",),
    ),
    Mutant(
        "M08", "views", "a view that double-counts frameworks: framework scores join every framework's muted counts",
        (Edit("src/iam_audit/sql/views/045_aws_policy_framework_scores.sql",
              ") m ON m.snapshot_date = t.snapshot_date AND m.framework = t.framework",
              ") m ON m.snapshot_date = t.snapshot_date"),),
        ("tests/bi/test_muting.py", "tests/bi/test_views.py"),
    ),
    Mutant(
        "M09", "exceptions", "an exception that mutes across accounts: the account of an exception is ignored",
        (Edit("src/iam_audit/sql/functions/035_exceptions.sql",
              "      AND (e.account_id IS NULL OR e.account_id = p_account_id)\n",
              "      AND (e.account_id IS NULL OR e.account_id IS NOT NULL)\n"),
         Edit("src/iam_audit/sql/views/008_aws_policy_muted_verdicts.sql",
              "     AND e.account_id = ex.account_id\n",
              "\n")),
        ("tests/bi/test_muting.py", "tests/history/test_muted_history.py"),
    ),
    Mutant(
        "M10", "history", "a history writer that starts a new interval for an unchanged verdict",
        (Edit("src/iam_audit/sql/functions/011_history.sql",
              "AND x.p_reason = x.d_reason AND x.p_type IS NOT DISTINCT FROM x.d_type AS same_pd,",
              "AND x.p_reason = x.d_reason AND x.p_type IS NOT DISTINCT FROM x.d_type AND false AS same_pd,"),),
        ("tests/history/test_equivalence.py", "tests/bi/test_views.py"),
    ),
    Mutant(
        "M11", "replay", "a replay that calls IAM: replay mode extracts like a live run",
        (Edit("src/iam_audit/tasks.py",
              "    if plan.mode == \"replay\":\n        _skip_replay(plan, accounts)",
              "    if plan.mode == \"replay\" and False:\n        _skip_replay(plan, accounts)"),),
        ("tests/integration/test_batch_extract.py",),
    ),
    Mutant(
        "M12", "secrets", "a secret written to a log: the assumed role's session token is logged",
        (Edit("src/iam_audit/aws.py",
              "            creds = sts.assume_role(**kwargs)[\"Credentials\"]\n",
              "            creds = sts.assume_role(**kwargs)[\"Credentials\"]\n"
              "            __import__(\"logging\").getLogger(__name__).warning(\"session %s\",\n"
              "                                                               creds[\"SessionToken\"])\n"),),
        ("tests/e2e/test_security.py::test_secrets_never_persist",),
    ),
    Mutant(
        "M13", "check", "root handling: the root account's access keys are not looked at",
        (Edit("src/iam_audit/sql/checks/root_access_keys.sql",
              "CASE WHEN s.account_access_keys_present = 0 THEN 'pass'",
              "CASE WHEN s.account_access_keys_present >= 0 THEN 'pass'"),),
        ("tests/checks/test_root_access_keys.py",),
    ),
    Mutant(
        "M14", "summary", "the pass rate counts errors as passes",
        (Edit("src/iam_audit/sql/views/040_aws_policy_scores.sql",
              "round(e.pass_count::numeric / nullif(e.pass_count + e.fail_count - coalesce(m.muted, 0), 0), 4)",
              "round((e.pass_count + e.error_count)::numeric / nullif(e.pass_count + e.error_count + e.fail_count"
              " - coalesce(m.muted, 0), 0), 4)"),),
        ("tests/bi/test_views.py", "tests/bi/test_muting.py", "tests/ui/test_compliance_page.py"),
    ),
    Mutant(
        "M15", "secrets", "the ExternalId reaches XCom: the run's plan carries it",
        (Edit("src/iam_audit/plan.py",
              "CONFIG_NOT_IN_XCOM = frozenset({\"external_id\", \"warnings\"})",
              "CONFIG_NOT_IN_XCOM = frozenset({\"warnings\"})"),),
        ("tests/unit/test_plan.py",),
    ),
    Mutant(
        "M16", "report", "the HTML report stops escaping an account's name",
        (Edit("src/iam_audit/templates/report.html",
              "<td>{{ r.name }}</td>{% for c in r.cells %}",
              "<td>{{ r.name | safe }}</td>{% for c in r.cells %}"),),
        ("tests/bi/test_report.py",),
    ),
    Mutant(
        "M17", "check", "missing data is not an error: an account whose data sets were not collected loses "
        "its verdicts instead of getting 'error'",
        (Edit("src/iam_audit/sql/functions/011_history.sql",
              "           CASE WHEN NOT r.ready THEN coalesce(r.reason, 'data not collected') END AS error_reason\n",
              "           NULL::text AS error_reason\n"),),
        ("tests/checks/test_fail_closed.py",),
    ),
    Mutant(
        "M18", "evidence", "evidence in S3 trusted unchecked: a raw object whose SHA-256 differs from its "
        "manifest's is loaded",
        (Edit("src/iam_audit/ingest/load.py",
              "if expected is not None and hashlib.sha256(blob).hexdigest() != expected:",
              "if False and expected is not None and hashlib.sha256(blob).hexdigest() != expected:"),),
        ("tests/integration/test_load_failures.py",),
    ),
    Mutant(
        "M19", "retention", "retention keeps one day too few: the first date inside the retention window is "
        "deleted",
        (Edit("src/iam_audit/evaluate/retention.py",
              "    return date.fromisoformat(str(snapshot_date)) - timedelta(days=retention_days)",
              "    return date.fromisoformat(str(snapshot_date)) - timedelta(days=retention_days - 1)"),),
        ("tests/history/test_retention.py", "tests/bi/test_views.py"),
    ),
    Mutant(
        "M20", "organisation", "a refused organisation data set is trusted: readiness reads every organisation "
        "data set as collected, so IH.11 judges what was never read",
        (Edit("src/iam_audit/sql/functions/020_check_helpers.sql",
              "            SELECT 2, o.status, o.error_code, o.error_message\n",
              "            SELECT 2, 'ok', o.error_code, o.error_message\n"),),
        ("tests/checks/test_hygiene_root_credentials_centralized.py",),
    ),
)


def tracked_files(ref: str | None) -> Path:
    """A copy of the tree in a new temporary folder: `ref`'s files, or the working tree's."""
    dest = Path(tempfile.mkdtemp(prefix="iam-audit-mutations-"))
    if ref:
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    else:
        names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                               capture_output=True).stdout.decode().split("\0")
        for name in filter(None, names):
            source = ROOT / name
            if source.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name)
    return dest


def apply(tree: Path, mutant: Mutant) -> dict[Path, str]:
    """Apply a mutant's edits; returns the original text of each file it changed."""
    originals: dict[Path, str] = {}
    for edit in mutant.edits:
        path = tree / edit.path
        current = path.read_text()
        originals.setdefault(path, current)
        count = current.count(edit.old)
        if count != 1:
            raise SystemExit(f"{mutant.id}: {edit.path}: the text to mutate occurs {count} times, not once: "
                             f"{edit.old[:80]!r}")
        path.write_text(current.replace(edit.old, edit.new))
    return originals


def run_pytest(tree: Path, tests: tuple[str, ...], log: Path, stop_first: bool) -> tuple[int, list[str], float]:
    env = {**os.environ, "IAM_AUDIT_TEST_STATE": str(tree / ".devenv" / "test")}
    # The venv's editable installs point at the checkout: the copy's own packages must come first, or
    # every mutant of src/ or tools/ runs the unmutated code and survives.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(tree / "src"), str(tree / "tools"),
                                                      os.environ.get("PYTHONPATH"))))
    env.pop("PYTEST_XDIST_WORKER", None)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=",
            "-rf", *(["-x"] if stop_first else []), *tests]
    started = time.monotonic()
    with open(log, "w") as out:
        code = subprocess.run(args, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", log.read_text(), flags=re.MULTILINE)
    return code, failed, time.monotonic() - started


def stop_servers(tree: Path) -> None:
    """The copy's embedded PostgreSQL servers outlive pytest (as the developer's do): stop them."""
    for pid_file in (tree / ".devenv").rglob("postmaster.pid"):
        try:
            os.kill(int(pid_file.read_text().split()[0]), 2)  # SIGINT: PostgreSQL's fast shutdown
        except (ProcessLookupError, ValueError, IndexError):
            pass
    time.sleep(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", help="git revision to copy (default: the working tree)")
    parser.add_argument("--only", help="comma-separated mutant ids")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the copy and its logs")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.only or m.id in args.only.split(",")]
    tree = tracked_files(args.ref)
    logs = tree / ".mutation-logs"
    logs.mkdir()
    label = args.ref or "working tree"
    print(f"mutation run on {label}: copy in {tree}", flush=True)
    results = []
    try:
        union = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        code, failed, seconds = run_pytest(tree, union, logs / "unmutated.log", stop_first=False)
        if code != 0:
            print(f"the unmutated tests fail ({failed}); see {logs / 'unmutated.log'}: no mutant can be judged")
            return 2
        print(f"unmutated: {len(union)} test paths pass ({seconds:.0f} s)", flush=True)
        for mutant in chosen:
            originals = apply(tree, mutant)
            try:
                code, failed, seconds = run_pytest(tree, mutant.tests, logs / f"{mutant.id}.log", stop_first=True)
            finally:
                for path, text in originals.items():
                    path.write_text(text)
            caught = code != 0 and bool(failed)
            results.append({"id": mutant.id, "layer": mutant.layer, "defect": mutant.defect, "caught": caught,
                            "caught_by": failed[0] if failed else None, "exit_code": code,
                            "seconds": round(seconds, 1)})
            print(f"{mutant.id} {'caught ' if caught else 'SURVIVED'} {seconds:5.0f} s  {mutant.defect}"
                  + (f"\n      by {failed[0]}" if failed else ""), flush=True)
    finally:
        stop_servers(tree)
        if args.json:
            args.json.write_text(json.dumps({"ref": label, "mutants": results}, indent=1) + "\n")
        if args.keep:
            print(f"kept {tree}")
        else:
            subprocess.run(["chmod", "-R", "u+w", str(tree)], check=False)
            shutil.rmtree(tree, ignore_errors=True)
    survived = [r["id"] for r in results if not r["caught"]]
    print(f"{len(results) - len(survived)} of {len(results)} mutants caught"
          + (f"; survived: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
