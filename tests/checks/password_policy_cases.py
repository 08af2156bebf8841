"""Shared cases for the password_policy_* checks: one account per policy variant."""

from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

STRONG, NO_POLICY, NO_ROW, MISSING = "100000000001", "100000000002", "100000000003", "100000000004"


def run_variants(db, logic: str, variants: dict[str, dict]) -> None:
    """Accounts: STRONG (passes everything), NoSuchEntity, no row at all, data set missing, plus
    one account per variant (account id -> overrides of the strong policy)."""
    s = Snapshot(db)
    s.account(STRONG).password_policy(STRONG)
    s.account(NO_POLICY).no_password_policy(NO_POLICY)
    s.account(NO_ROW)
    s.account(MISSING, missing={"password_policy": "AccessDenied"})
    for account, overrides in variants.items():
        s.account(account).password_policy(account, **overrides)
    s.commit()
    run_check(db, logic, SNAPSHOT)


def assert_verdicts(db, logic: str, ids: dict[str, str], expected: dict[str, str]) -> None:
    """expected: variant account -> status; the shared accounts are checked here too."""
    for framework, check_id in ids.items():
        assert statuses(db, logic, framework) == {
            STRONG: "pass",
            NO_POLICY: "fail",
            NO_ROW: "fail",
            MISSING: "error",
            **expected,
        }
        got = verdicts(db, logic, framework)
        assert got[(framework, check_id, NO_POLICY, NO_POLICY)][1].startswith(
            "The account has no IAM password policy ("
        )
        assert "NoSuchEntity" in got[(framework, check_id, NO_POLICY, NO_POLICY)][1]
        assert got[(framework, check_id, NO_ROW, NO_ROW)][1].startswith(
            "The account has no IAM password policy ("
        )
        assert "AccessDenied" in got[(framework, check_id, MISSING, MISSING)][1]
    assert {(k[0], k[1]) for k in verdicts(db, logic)} == set(ids.items())
