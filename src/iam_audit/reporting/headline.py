"""The one headline answer to "how are we doing?": findings and their pass rate.

The unit is defined once, in SQL (sql/views/080_aws_policy_findings.sql: aws_policy_findings,
aws_policy_headline); this module holds its words and reads it, for the summary, the HTML report and
the Compliance page. The Superset dashboard's tiles count the same findings (tests/bi/test_headline.py
checks that they agree). Every other count is labelled with its own unit (FRAMEWORK_ROWS).
"""

from __future__ import annotations

from dataclasses import dataclass

# The words are the vocabulary's (iam_audit.vocabulary), shared with the page, the report and the summary.
from iam_audit.vocabulary import ALL, DEFINITION, FRAMEWORK_ROWS, PASS_RATE, UNIT, pass_ratio

__all__ = ["ALL", "DEFINITION", "FRAMEWORK_ROWS", "PASS_RATE", "UNIT", "Headline", "headline", "headline_per_account"]



@dataclass(frozen=True)
class Headline:
    scope: str
    findings: int = 0
    passing: int = 0
    failing: int = 0
    errors: int = 0
    muted: int = 0
    pass_rate: float | None = None  # 0..1

    @property
    def percent(self) -> str:
        return "n/a" if self.pass_rate is None else f"{100 * self.pass_rate:.1f}%"

    def sentence(self) -> str:
        """e.g. '164 open findings, pass rate 72.6% of findings (412 passing; 3 error, 2 muted)'."""
        return (f"{self.failing} open {UNIT}, pass rate {self.percent} of {UNIT} "
                f"({self.passing} passing; {self.errors} error, {self.muted} muted)")


# The counts of aws_policy_headline over rows of aws_policy_findings.
_COUNTS = """count(*), count(*) FILTER (WHERE status = 'pass'), count(*) FILTER (WHERE status = 'fail'),
             count(*) FILTER (WHERE status = 'error'), count(*) FILTER (WHERE status = 'muted')"""


def _headline(scope: str, findings, passing, failing, errors, muted) -> Headline:
    ratio = pass_ratio(int(passing), int(failing))
    return Headline(scope, int(findings), int(passing), int(failing), int(errors), int(muted),
                    None if ratio is None else round(ratio, 4))


def headline(conn, snapshot_date, scope: str = ALL, account_ids: list[str] | None = None) -> Headline:
    """The headline of one snapshot date in one scope (ALL or a framework name), over every account
    or the given ones."""
    accounts = " AND account_id = ANY(%s)" if account_ids else ""
    row = conn.execute(
        f"SELECT {_COUNTS} FROM aws_policy_findings WHERE snapshot_date = %s AND scope = %s{accounts}",  # noqa: S608
        [str(snapshot_date), scope] + ([list(account_ids)] if account_ids else [])).fetchone()
    return _headline(scope, *row)


def headline_per_account(conn, snapshot_date, account_ids: list[str] | None = None,
                         scope: str = ALL) -> dict[str, Headline]:
    accounts = " AND account_id = ANY(%s)" if account_ids else ""
    rows = conn.execute(
        f"SELECT account_id, {_COUNTS} FROM aws_policy_findings WHERE snapshot_date = %s AND scope = %s"  # noqa: S608
        f"{accounts} GROUP BY account_id",
        [str(snapshot_date), scope] + ([list(account_ids)] if account_ids else [])).fetchall()
    return {account_id: _headline(scope, *counts) for account_id, *counts in rows}
