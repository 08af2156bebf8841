"""aws_policy_manual_evidence: the organisation facts next to CIS v7.0.0's manual organisation
controls (2.1.1, 2.1.2, 2.1.4, 2.1.5, 2.1.6), flagged for the assessor, never a verdict; data that
could not be collected is a row saying so."""

from __future__ import annotations

from iam_audit.database import run_check
from tests.checks.staging import SNAPSHOT, Snapshot

MGMT, GUARDED, BARE = "111111111111", "222222222222", "333333333333"
V7 = "cis_v7.0.0"


def _organisation(db, missing: dict | None = None) -> None:
    s = Snapshot(db)
    for account in (MGMT, GUARDED, BARE):
        s.account(account).organization_account(account, name=f"acct-{account[:3]}")
    s.organization(features=("RootSessions",), management=MGMT, missing=missing)
    s.org_node("r-root", "ROOT", None, "Root").org_node("ou-work", "ORGANIZATIONAL_UNIT", "r-root", "Workloads")
    s.org_node("ou-prod", "ORGANIZATIONAL_UNIT", "ou-work", "Prod")
    s.org_node(MGMT, "ACCOUNT", "r-root", "management").org_node(GUARDED, "ACCOUNT", "ou-prod", "prod-core")
    s.org_node(BARE, "ACCOUNT", "r-root", "legacy-apps")
    s.org_policy("p-FullAWSAccess", "FullAWSAccess", ("r-root", MGMT, GUARDED, BARE), aws_managed=True)
    s.org_policy("p-guard", "GuardrailBaseline", ("ou-work",))
    s.org_policy("p-rcp", "DataPerimeter", ("r-root",), policy_type="RESOURCE_CONTROL_POLICY")
    s.delegated_admin(GUARDED, "guardduty.amazonaws.com", name="prod-core")
    s.commit()


def _evidence(db, check_id: str) -> dict:
    rows = db.execute("SELECT account_id, subject, detail, attention FROM aws_policy_manual_evidence "
                      "WHERE snapshot_date = %s AND framework = %s AND check_id = %s ORDER BY account_id, subject",
                      (SNAPSHOT, V7, check_id)).fetchall()
    return {(account, subject): (detail, attention) for account, subject, detail, attention in rows}


def test_evidence_for_each_organisation_control(db):
    _organisation(db)
    guardrails = _evidence(db, "2.1.2")
    assert set(guardrails) == {(GUARDED, "SCPs and RCPs in effect"), (BARE, "SCPs and RCPs in effect")}
    detail, attention = guardrails[(GUARDED, "SCPs and RCPs in effect")]
    assert not attention
    assert detail == ("SCPs: GuardrailBaseline (at Workloads), FullAWSAccess (AWS-managed); "
                      "RCPs: DataPerimeter (at Root)")
    detail, attention = guardrails[(BARE, "SCPs and RCPs in effect")]
    assert attention and "no SCP beyond FullAWSAccess" in detail

    (root,) = [v for (a, subject), v in _evidence(db, "2.1.1").items() if subject == "o-example0001"]
    assert root == ("root credentials management not enabled; privileged root actions enabled", True)
    assert _evidence(db, "2.1.1")[(None, "delegated administrator for iam.amazonaws.com")][0].startswith("none")

    paths = _evidence(db, "2.1.4")
    assert paths[(GUARDED, "OU path")] == ("Root / Workloads / Prod", False)
    assert paths[(BARE, "OU path")] == ("Root", True)  # directly under the root
    assert paths[(MGMT, "OU path")] == ("Root (management account)", False)

    assert _evidence(db, "2.1.5") == {(None, "Organizations delegation policy"): (
        "none: Organizations policies are managed from the management account", True)}
    ((key, (detail, attention)),) = _evidence(db, "2.1.6").items()
    assert key == (GUARDED, "guardduty.amazonaws.com") and not attention and "prod-core" in detail


def test_uncollected_data_is_shown_never_a_pass(db):
    _organisation(db, missing={"organization_policies": "AccessDeniedException",
                               "organization_features": "AccountNotManagementOrDelegatedAdministratorException"})
    ((key, (detail, attention)),) = _evidence(db, "2.1.2").items()
    assert key == (None, "SCPs and RCPs") and attention and "AccessDeniedException" in detail
    rows = [v for (a, s), v in _evidence(db, "2.1.1").items() if a == MGMT]
    assert rows and all(att and "AccountNotManagementOrDelegatedAdministratorException" in d for d, att in rows)
    # the manual controls never get a verdict, whatever the checks write
    for logic in ("hygiene_root_credentials_centralized", "root_mfa"):
        run_check(db, logic, SNAPSHOT)
    assert db.execute("SELECT count(*) FROM aws_policy_results WHERE framework = %s AND check_id LIKE '2.1.%%'",
                      (V7,)).fetchone()[0] == 0


def test_readers_see_the_evidence(db):
    _organisation(db)
    granted = db.execute("SELECT has_table_privilege('compliance_reader', 'aws_policy_manual_evidence', "
                         "'SELECT')").fetchone()[0]
    assert granted


def test_the_text_summary_lists_the_evidence_needing_a_look_first(db):
    from iam_audit.reporting.summary import format_manual_evidence

    _organisation(db)
    text = format_manual_evidence(db, SNAPSHOT, width=160)
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if "cis_v7.0.0 2.1.2" in line)
    assert "1 of 2 need a look" in lines[head]
    assert lines[head + 1].lstrip().startswith("!") and BARE in lines[head + 1]
    assert [line.split()[1] for line in lines if line.startswith("  cis_v7.0.0")] == [
        "2.1.1", "2.1.2", "2.1.4", "2.1.5", "2.1.6"]
    assert all(len(line) <= 160 for line in lines)
    assert format_manual_evidence(db, "2020-01-01") == ""
