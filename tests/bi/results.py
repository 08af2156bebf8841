"""Write aws_policy_results rows directly, for the BI view tests."""

from __future__ import annotations

from datetime import date

D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 5)
A, B = "111111111111", "222222222222"
FW, CHECK = "cis_v3.0.0", "1.10"


def user(account_id: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:user/{name}"


def put(conn, snapshot_date: date, account_id: str, resource_id: str, status: str, *,
        framework: str = FW, check_id: str = CHECK, severity: str = "high",
        resource_type: str = "iam_user", title: str = "MFA for console users", reason: str | None = None) -> None:
    conn.execute(
        """INSERT INTO aws_policy_results (snapshot_date, framework, check_id, title, severity, account_id,
                                           resource_id, resource_type, status, reason, run_id, control_logic)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'test', 'console_users_mfa')""",
        (snapshot_date, framework, check_id, title, severity, account_id, resource_id, resource_type, status,
         reason or f"{resource_id.rsplit('/', 1)[-1]} is {status} on {snapshot_date}"),
    )


def put_error(conn, snapshot_date: date, account_id: str, **kw) -> None:
    """The account-level error verdict the check macro writes when data is missing."""
    put(conn, snapshot_date, account_id, account_id, "error", resource_type="account", **kw)


def history(conn) -> None:
    """Three snapshots (D1, D2, D3 three days later) of one control in two accounts.

    account A: alice fail fail fail; bob pass fail fail; carol fail pass fail; dave pass pass -;
               erin - - fail; frank fail - fail.
    account B: gina pass on D1, the account could not be evaluated on D2, gina fails on D3.
    """
    rows = {
        "alice": ("fail", "fail", "fail"), "bob": ("pass", "fail", "fail"),
        "carol": ("fail", "pass", "fail"), "dave": ("pass", "pass", None),
        "erin": (None, None, "fail"), "frank": ("fail", None, "fail"),
    }
    for name, statuses in rows.items():
        for day, status in zip((D1, D2, D3), statuses, strict=True):
            if status:
                put(conn, day, A, user(A, name), status)
    put(conn, D1, B, user(B, "gina"), "pass")
    put_error(conn, D2, B)
    put(conn, D3, B, user(B, "gina"), "fail")
    conn.commit()


def query(conn, sql: str, params=()) -> list[dict]:
    cur = conn.execute(sql, params)
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# Exceptions of the tests exist from before D1, so they may mute every snapshot of history().
CREATED = date(2026, 10, 1)


def add_exception(conn, *, expires_on: date, reason: str = "accepted risk", account_id=None, framework=None,
                  check_id=None, resource_pattern=None, all_scope: bool = False,
                  created_on: date | None = CREATED) -> int:
    """Insert an exception created on `created_on` (as the table's owner, who alone can back-date one:
    the guard trigger sets created_at to now() for everyone else); None: created now."""
    backdate = created_on is not None
    if backdate:
        conn.execute("ALTER TABLE aws_policy_exceptions DISABLE TRIGGER aws_policy_exceptions_guard")
    exception_id = conn.execute(
        """INSERT INTO aws_policy_exceptions (account_id, framework, check_id, resource_pattern, reason,
                                              expires_on, created_by, all_scope, created_at)
           VALUES (%s, %s, %s, %s, %s, %s, 'tests', %s, coalesce(%s::timestamptz, now())) RETURNING id""",
        (account_id, framework, check_id, resource_pattern, reason, expires_on, all_scope,
         f"{created_on} 12:00:00+00" if backdate else None),
    ).fetchone()[0]
    if backdate:
        conn.execute("ALTER TABLE aws_policy_exceptions ENABLE TRIGGER aws_policy_exceptions_guard")
    conn.commit()
    return exception_id
