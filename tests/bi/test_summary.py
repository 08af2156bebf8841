"""The CLI / task-log summary: pass rate as everywhere (pass / (pass + fail)), errors and muted fails
counted beside it, each account's snapshot age, stale accounts marked, load failures named."""

from checks.staging import Snapshot

from iam_audit.reporting.summary import build_summary, format_summary

from .results import D2, D3, A, B, add_exception, history, put, put_error, user

C = "333333333333"


def summary(db):
    history(db)
    put(db, D2, C, user(C, "ivan"), "pass")
    put_error(db, D3, C)                                  # C's newest snapshot could not be evaluated
    db.commit()
    Snapshot(db, D3).account(A, name="production").account(B, name="sandbox").account(C, name="legacy")
    db.execute("UPDATE iam_stage.accounts SET load_error = 's3://b/k does not match the SHA-256' "
               "WHERE account_id = %s", (C,))
    db.commit()
    add_exception(db, account_id=A, resource_pattern="%/erin", expires_on=D3)
    return build_summary(db, D3)


def test_pass_rate_is_pass_over_pass_plus_fail_with_errors_and_muted_beside_it(db):
    s = summary(db)
    accounts = {a["account_id"]: a for a in s.accounts}
    # A on D3: alice bob carol frank fail, erin muted, no pass
    assert (accounts[A]["pass"], accounts[A]["fail"], accounts[A]["error"], accounts[A]["muted"]) == (0, 4, 0, 1)
    assert accounts[A]["score"] == 0.0
    # B on D3: gina fails; C: only an account-level error, so no rate at all (never 0% or 100%)
    assert accounts[B]["score"] == 0.0
    assert (accounts[C]["error"], accounts[C]["score"]) == (1, None)
    text = format_summary(s)
    assert "pass rate" in text and "(pass / (pass + fail))" in text
    assert f"{s.totals['error']} error, {s.totals['muted']} muted" in text and s.totals["muted"] == 1


def test_stale_accounts_are_marked_with_their_snapshot_age(db):
    s = summary(db)
    accounts = {a["account_id"]: a for a in s.accounts}
    assert (accounts[C]["stale"], accounts[C]["latest_snapshot_date"], accounts[C]["snapshot_age_days"]) == \
        (True, D2, (D3 - D2).days)
    assert (accounts[A]["stale"], accounts[A]["snapshot_age_days"]) == (False, 0)
    assert s.stale_accounts == [C]
    lines = {line.split()[0]: line for line in format_summary(s).splitlines() if line[:12].isdigit()}
    assert lines[C].endswith("STALE") and f"{D2}" in lines[C] and f"{(D3 - D2).days}d" in lines[C]
    assert lines[A].endswith("current")
    text = format_summary(s)
    assert "1 account(s) STALE" in text and "not current" in text
    assert "could not be loaded" in text and "does not match the SHA-256" in text
