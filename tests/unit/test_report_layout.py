"""The HTML report's layout, rendered from data (no database): the failing list first, one heat-map row
per control logic with its framework numbers in one cell, accounts as rows when there are many, cells
coloured by the vocabulary's thresholds, account ids on one line."""

from __future__ import annotations

from iam_audit.reporting.report import ACCOUNTS_AS_COLUMNS, Counts, ReportData, cell_colour, heat_map, render_report
from iam_audit.vocabulary import TONE_COLOURS


def data(accounts: int) -> ReportData:
    ids = {f"{100000000000 + n}": f"team {n} <prod> with a long account name" for n in range(accounts)}
    controls = [
        {"framework": f, "check_id": c, "title": t, "severity": s, "logic": logic, "manual": False}
        for logic, s, t, pairs in (
            ("console_users_mfa", "high", "MFA for console users", (("cis_v1.2.0", "1.2"), ("cis_v3.0.0", "1.10"))),
            ("root_mfa", "critical", "MFA for root", (("cis_v1.2.0", "1.13"), ("cis_v3.0.0", "1.5"))),
        ) for f, c in pairs]
    cells = {}
    for n, account in enumerate(ids):
        for c in controls:
            # 59 % in console_users_mfa of the first account: amber, never green
            cells[c["framework"], c["check_id"], account] = (
                Counts(passed=59, failed=41) if (n, c["logic"]) == (0, "console_users_mfa") else Counts(passed=1))
    failing = [{"account_id": next(iter(ids)), "resource_id": "arn:aws:iam::100000000000:user/alice",
                "resource_type": "user", "severity": "high", "controls": "cis_v3.0.0 1.10", "title": "MFA",
                "reason": "alice has no MFA"}]
    return ReportData("2026-11-28", ids, ["cis_v1.2.0", "cis_v3.0.0"], controls, cells, failing=failing)


def test_one_row_per_control_logic_with_its_framework_numbers():
    heat = heat_map(data(3))
    assert [r["logic"] for r in heat["rows"]] == ["root_mfa", "console_users_mfa"]  # most severe first
    assert heat["rows"][1]["numbers"] == "CIS v1.2.0 1.2 · v3.0.0 1.10"
    assert not heat["accounts_as_rows"]
    page = render_report(data(3))
    assert page.count('<td class="nums">') == 2
    assert page.index("Top failing resources") < page.index('id="heat-map"')


def test_many_accounts_are_rows_with_their_full_names():
    many = ACCOUNTS_AS_COLUMNS + 4
    assert heat_map(data(many))["accounts_as_rows"]
    page = render_report(data(many))
    assert page.count('<th class="logic"') == 2
    assert page.count('<td class="acct"><code class="acct">') == many
    assert "team 11 &lt;prod&gt; with a long account name" in page


def test_cells_are_coloured_by_threshold():
    assert cell_colour(Counts(passed=59, failed=41)) == TONE_COLOURS["warn"]
    assert cell_colour(Counts(passed=49, failed=51)) == TONE_COLOURS["bad"]
    assert cell_colour(Counts(passed=80, failed=20)) == TONE_COLOURS["good"]
    cell = heat_map(data(3))["rows"][1]["cells"]["100000000000"]
    assert cell["colour"] == TONE_COLOURS["warn"] and cell["label"] == "41"
    page = render_report(data(3))
    assert '<div class="bar warn"' in page and '<div class="bar good"' in page
