"""The HTML report: self-contained, well-formed, with the snapshot's accounts and controls."""

from html.parser import HTMLParser

from checks.staging import Snapshot

from iam_audit.evaluate.catalogue import load_catalogue
from iam_audit.reporting.report import Counts, build_report_html, cell_colour, write_report

from .results import D2, D3, A, B, add_exception, history, put, user

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "source", "wbr"}


class Checker(HTMLParser):
    """Collects tags, attributes and text, and checks that every element is closed in order."""

    def __init__(self):
        super().__init__()
        self.stack, self.problems, self.tags, self.attrs, self.text = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Checker:
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.problems == [] and checker.stack == [], (checker.problems, checker.stack)
    return checker


def report(db) -> str:
    history(db)
    Snapshot(db, D3).account(A, name="production").account(B, name="sandbox <dev>")
    put(db, D3, A, A, "error", framework="cis_v1.2.0", check_id="1.9", resource_type="account",
        severity="medium")
    put(db, D3, A, user(A, "root"), "fail", framework="cis_v1.2.0", check_id="1.13", severity="critical",
        resource_type="account")
    db.commit()
    add_exception(db, resource_pattern="%/erin", expires_on=D3, reason="leaver, deleted on Monday")
    return build_report_html(db, D3)


def test_report_is_valid_self_contained_html(db):
    page = report(db)
    checker = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert {"html", "head", "style", "body", "table"} <= set(checker.tags)
    assert "script" not in checker.tags and "link" not in checker.tags and "img" not in checker.tags
    assert not any(name in ("src", "href") for name, _ in checker.attrs)
    assert "http://" not in page and "https://" not in page and "url(" not in page


def test_report_shows_accounts_controls_failures_errors_and_manual_controls(db):
    page = report(db)
    text = " ".join(parse(page).text)
    assert A in text and B in text and "production" in text
    assert "sandbox <dev>" in text and "sandbox &lt;dev&gt;" in page      # escaped
    for framework in ("cis_v1.2.0", "cis_v3.0.0"):
        assert framework in text
    assert "1.10" in text
    # the heat-map cell of 1.10 in A: 4 unmuted fails (alice, bob, carol, frank), erin muted
    assert "cis_v3.0.0 1.10 in 111111111111 production: 0 pass, 4 fail, 0 error, 1 muted" in page
    # top failing resources: the critical one first
    assert text.index(user(A, "root")) < text.index(user(A, "alice"))
    assert "leaver, deleted on Monday" in text and "Muted findings" in text
    assert "Errors explained" in text and "cis_v1.2.0 1.9" in text
    manual = [c for c in load_catalogue().all_controls() if c.logic is None]
    assert manual and all(c.title in text for c in manual)


def test_report_of_a_snapshot_without_verdicts(db):
    checker = parse(build_report_html(db, D2))
    assert "No failing resource." in " ".join(checker.text)


def test_write_report(db, tmp_path):
    history(db)
    path = write_report(db, D3, tmp_path / "out" / "report.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cell_colours():
    assert cell_colour(Counts(passed=3)) == "#1a7f37"
    assert cell_colour(Counts(passed=1, failed=1)) != cell_colour(Counts(failed=1))
    assert cell_colour(Counts(errors=1)) == "#bf8700"


def test_report_marks_stale_accounts_and_shows_snapshot_age(db):
    from .results import D2 as evaluated
    from .results import put_error

    stale = "333333333333"
    put(db, evaluated, stale, user(stale, "ivan"), "pass")
    put_error(db, D3, stale)            # its newest snapshot could not be evaluated
    db.commit()
    Snapshot(db, D3).account(stale, name="legacy")
    page = report(db)
    text = " ".join(parse(page).text)
    section = page.split("<h2>Snapshot age per account</h2>")[1].split("</section>")[0]
    rows = {r.split("</code>")[0]: r for r in section.split("<tr><td><code>")[1:]}
    assert set(rows) == {A, B, stale}
    assert "stale</span>" in rows[stale] and f"<td>{evaluated}</td>" in rows[stale]
    assert f"<td class='num'>{(D3 - evaluated).days}</td>" in rows[stale]
    assert "<td>current</td>" in rows[A] and "<td class='num'>0</td>" in rows[A]
    # the pass-rate table flags it too, and the tiles count it
    assert f'{stale}</code> <span class="stale">stale</span>' in page
    assert f'{A}</code> <span class="stale">' not in page
    assert "stale accounts" in text


def test_pass_rate_excludes_errors_and_muted_and_shows_them_beside_it(db):
    page = report(db)
    # A in cis_v3.0.0: 0 pass, 4 fail (erin muted): 0%, with its error and muted counts next to it
    assert '<span class="rate">0%</span> <small class="side">0 error · 1 muted</small>' in page
    assert Counts(passed=3, failed=1, errors=5, muted=2).pass_rate == 0.75


def test_manual_controls_carry_their_organisation_evidence_escaped(db):
    """CIS v7.0.0 2.1.2 in the report: the account without a guardrail SCP first, flagged; names escaped."""
    report(db)  # the fixture's verdicts of D3, then the organisation of the same date
    day = D3
    s = Snapshot(db, snapshot_date=day)
    s.organization(features=(), management=A)
    s.org_node("r-root", "ROOT", None, "Root").org_node(A, "ACCOUNT", "r-root", "production")
    s.org_node(B, "ACCOUNT", "r-root", "sandbox <dev>")
    s.org_policy("p-FullAWSAccess", "FullAWSAccess", ("r-root",), aws_managed=True)
    s.commit()
    page = build_report_html(db, day)
    row = page.split("<b>2.1.2</b>", 1)[1].split("</tr>", 1)[0]
    assert "1 of 1 need a look" in row and "<b>look:</b>" in row
    assert "sandbox &lt;dev&gt;" in row and "no SCP beyond FullAWSAccess" in row
    title = "Ensure Organizations management account is not used for workloads"
    assert f"<b>2.1.3</b></td><td>{title}</td><td></td>" in page  # no evidence collected for it


def test_report_shows_the_runs_configuration_warnings_escaped(db):
    warning = "iam_audit_role_name='OrganizationAccountAccessRole' is Organizations' administrator role <b>"
    html = build_report_html(db, D2, warnings=[warning])
    assert "Configuration warnings" in html
    assert "administrator role &lt;b&gt;" in html and "<b>" not in html.split("Configuration warnings")[1][:400]
    assert "Configuration warnings" not in build_report_html(db, D2)
