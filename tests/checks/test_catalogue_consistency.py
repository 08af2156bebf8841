"""The catalogue and src/iam_audit/sql/checks agree, and every check runs on one rich account without duplicate keys."""

import re

import pytest

from iam_audit.database import render_check, run_check
from iam_audit.evaluate.catalogue import load_catalogue
from iam_audit.paths import CHECKS_DIR

from .staging import ALL_DATASETS, SNAPSHOT, Snapshot, days_ago, verdicts

A, B = "111111111111", "222222222222"
CATALOGUE = load_catalogue()
LOGICS = [check.logic for check in CATALOGUE.checks]
CALL = re.compile(
    r"\{%-?\s*call\s+check\(\s*'(?P<logic>[^']+)'\s*,\s*needs\s*=\s*\[(?P<needs>[^\]]*)\]\s*\)\s*-?%\}"
)


def _macro_call(logic: str) -> tuple[str, tuple[str, ...]]:
    text = (CHECKS_DIR / f"{logic}.sql").read_text(encoding="utf-8")
    calls = CALL.findall(text)
    assert len(calls) == 1, f"{logic}.sql must call the check macro exactly once"
    name, needs = calls[0]
    return name, tuple(re.findall(r"'([^']+)'", needs))


def test_every_catalogue_logic_has_a_file():
    missing = [logic for logic in LOGICS if not (CHECKS_DIR / f"{logic}.sql").is_file()]
    assert missing == []


def test_every_file_has_a_catalogue_entry():
    files = sorted(path.stem for path in CHECKS_DIR.glob("*.sql"))
    assert [name for name in files if name not in LOGICS] == []


@pytest.mark.parametrize("logic", LOGICS)
def test_macro_call_matches_catalogue(logic):
    name, needs = _macro_call(logic)
    assert name == logic
    assert needs == CATALOGUE.check(logic).needs
    header = (CHECKS_DIR / f"{logic}.sql").read_text(encoding="utf-8").splitlines()[0]
    # the file names its logic and where its catalogue entry is; the framework mapping lives only in the
    # catalogue (docs/controls.md and each task's doc_md show it), so a new version edits no SQL file
    assert header == f"-- {logic} · catalogue: sql/catalogue/controls/{logic}.yaml"
    rendered = render_check(logic)
    assert "now()" not in rendered.split("verdicts (", 1)[1].split("errors AS", 1)[0]
    assert "current_date" not in rendered


STAR = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}
READ = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}],
}


def rich_account(s: Snapshot, acct: str) -> None:
    """An account with something for every check: passes and fails, two keys, policies everywhere."""
    s.account(acct)
    s.user(
        acct,
        "<root_account>",
        is_root=True,
        password_last_used=days_ago(3),
        keys=({"active": False, "last_rotated": days_ago(900), "last_used": days_ago(400)},),
    )
    s.user(
        acct,
        "alice",
        password=True,
        mfa=True,
        password_last_used=days_ago(1),
        keys=(
            {"last_rotated": days_ago(200), "last_used": days_ago(100)},
            {"last_rotated": days_ago(20), "last_used": days_ago(2)},
        ),
    )
    s.user(acct, "bob", password=True, mfa=False, keys=({"active": False, "last_rotated": days_ago(10)},))
    s.user(acct, "ci", keys=({"last_rotated": days_ago(30), "last_used": days_ago(1)},))
    for name in ("alice", "bob", "ci"):
        s.iam_user(acct, name)
    s.access_key(acct, "alice", f"AKIA{acct}ALICE1", created=days_ago(200))
    s.access_key(acct, "alice", f"AKIA{acct}ALICE2", created=days_ago(20))
    s.access_key(acct, "bob", f"AKIA{acct}BOB001", status="Inactive", created=days_ago(10))
    s.access_key(acct, "ci", f"AKIA{acct}CI0001", created=days_ago(30))
    s.group(acct, "admins").role(acct, "support").role(acct, "ops")
    s.managed_policy(acct, "AdministratorAccess", STAR, aws_managed=True, attachments=1)
    s.managed_policy(acct, "AWSSupportAccess", READ, aws_managed=True, attachments=1)
    s.managed_policy(acct, "AWSCloudShellFullAccess", READ, aws_managed=True, attachments=1)
    s.managed_policy(acct, "custom-admin", STAR)
    s.managed_policy(acct, "custom-read", READ, attachments=2)
    s.attach(acct, "group", "admins", "arn:aws:iam::aws:policy/AdministratorAccess")
    s.attach(acct, "role", "support", "arn:aws:iam::aws:policy/AWSSupportAccess")
    s.attach(acct, "role", "ops", "arn:aws:iam::aws:policy/AWSCloudShellFullAccess")
    s.attach(acct, "user", "alice", Snapshot.arn(acct, "policy", "custom-read"))
    s.attach(acct, "user", "bob", Snapshot.arn(acct, "policy", "custom-read"))
    s.inline_policy(acct, "user", "alice", "extra", READ)
    s.inline_policy(acct, "user", "alice", "more", READ)
    s.password_policy(acct, minimum_password_length=8)
    s.account_summary(acct, mfa=1, root_keys=1)
    s.virtual_mfa(acct, "root-account-mfa-device", user_arn=f"arn:aws:iam::{acct}:root")
    s.virtual_mfa(acct, "alice", user_arn=Snapshot.arn(acct, "user", "alice"))
    s.server_certificate(acct, "old", days_ago(10)).server_certificate(acct, "new", days_ago(-100))
    for region in ("eu-west-1", "us-east-1", "af-south-1"):
        s.region(acct, region)
    s.region(acct, "ap-east-1", "not-opted-in")
    s.analyzer(acct, "eu-west-1").analyzer(acct, "eu-west-1", name="second")
    s.analyzer(acct, "us-east-1", status="DISABLED")
    # the organisation's facts are per date, not per account: staged once, whatever the caller
    if not s.conn.execute("SELECT 1 FROM iam_stage.organization_datasets WHERE snapshot_date = %s",
                          (s.snapshot_date,)).fetchone():
        s.organization(features=("RootSessions",), management=acct)


def test_every_check_runs_on_a_rich_account_without_duplicates(db):
    s = Snapshot(db)
    rich_account(s, A)
    s.account(
        B,
        missing=dict.fromkeys(ALL_DATASETS, "AccessDenied"),  # not read at all
    )
    s.commit()
    for logic in LOGICS:
        run_check(db, logic, SNAPSHOT)  # a duplicate (framework, check_id, account, resource) raises
        run_check(db, logic, SNAPSHOT)  # and re-running replaces, never accumulates
    rows = verdicts(db)
    expected_controls = {(c.framework, c.check_id) for check in CATALOGUE.checks for c in check.controls}
    assert {(f, c) for f, c, _, _ in rows} == expected_controls
    # every control has at least one verdict for the rich account, and only 'error' for the empty one
    # (organisation facts, collected once for both, are not applied to an account that was not read)
    assert {(f, c) for f, c, a, _ in rows if a == A} == expected_controls
    assert {status for (f, c, a, r), (status, _) in rows.items() if a == B} == {"error"}
    assert {status for (_, _, a, _), (status, _) in rows.items() if a == A} <= {"pass", "fail"}
    # every reason is a sentence, and no "%%" escape leaked into it
    assert all(why.endswith(".") and "%%" not in why for (_, _, a, _), (_, why) in rows.items() if a == A)
