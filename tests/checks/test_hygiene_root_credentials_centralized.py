"""IH.11: the organisation manages member accounts' root credentials centrally
(iam:ListOrganizationsFeatures lists RootCredentialsManagement); missing, refused or malformed
organisation data is 'error' for every account, never a pass."""

from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "hygiene_root_credentials_centralized"
FW, ID = "iam_hygiene", "IH.11"
MGMT, MEMBER = "111111111111", "222222222222"


def _accounts(s: Snapshot) -> Snapshot:
    return s.account(MGMT).account(MEMBER)


def test_enabled_passes_every_account_and_names_the_management_account(db):
    _accounts(Snapshot(db)).organization(features=("RootCredentialsManagement", "RootSessions"),
                                         management=MGMT).commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {MGMT: "pass", MEMBER: "pass"}
    got = verdicts(db, LOGIC, FW)
    assert "privileged root actions enabled" in got[(FW, ID, MEMBER, MEMBER)][1]
    assert "management account" in got[(FW, ID, MGMT, MGMT)][1]
    assert "management account" not in got[(FW, ID, MEMBER, MEMBER)][1]


def test_root_sessions_alone_or_nothing_enabled_fails(db):
    _accounts(Snapshot(db)).organization(features=("RootSessions",), management=MGMT).commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {MGMT: "fail", MEMBER: "fail"}
    assert "lists RootSessions" in verdicts(db, LOGIC, FW)[(FW, ID, MEMBER, MEMBER)][1]
    db.execute("DELETE FROM iam_stage.organization_features")
    db.execute("INSERT INTO iam_stage.organization_features VALUES (%s, 'o-example0001', NULL)", (SNAPSHOT,))
    db.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {MGMT: "fail", MEMBER: "fail"}
    assert "no enabled feature" in verdicts(db, LOGIC, FW)[(FW, ID, MEMBER, MEMBER)][1]


def test_refused_missing_or_malformed_organisation_data_is_error(db):
    _accounts(Snapshot(db)).organization(missing={
        "organization_features": "AccountNotManagementOrDelegatedAdministratorException"}).commit()
    run_check(db, LOGIC, SNAPSHOT)
    got = verdicts(db, LOGIC, FW)
    assert {v[0] for v in got.values()} == {"error"} and len(got) == 2
    assert "AccountNotManagementOrDelegatedAdministratorException" in got[(FW, ID, MEMBER, MEMBER)][1]
    db.execute("UPDATE iam_stage.organization_datasets SET error_code = 'MalformedPayload', "
               "error_message = 'EnabledFeatures is not a list'")
    db.commit()
    run_check(db, LOGIC, SNAPSHOT)
    reason = verdicts(db, LOGIC, FW)[(FW, ID, MEMBER, MEMBER)][1]
    assert "malformed" in reason and "EnabledFeatures" in reason
    # never collected for the date (no organisation rows at all): error too
    db.execute("DELETE FROM iam_stage.organization_datasets")
    db.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert {v[0] for v in verdicts(db, LOGIC, FW).values()} == {"error"}


def test_an_account_that_could_not_be_read_gets_error_not_the_organisations_verdict(db):
    unread = "333333333333"
    datasets = ("credential_report", "authorization_details", "password_policy", "account_summary",
                "virtual_mfa_devices", "access_keys", "server_certificates", "regions", "access_analyzers",
                "alternate_contacts", "identity_providers")
    s = _accounts(Snapshot(db)).account(unread, missing=dict.fromkeys(datasets, "NoSnapshot"))
    s.organization(features=(), management=MGMT).commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, FW) == {MGMT: "fail", MEMBER: "fail", unread: "error"}
    reason = verdicts(db, LOGIC, FW)[(FW, ID, unread, unread)][1]
    assert "none of the account's own data sets" in reason and "NoSnapshot while reading" in reason
