from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "root_mfa"
IDS = {"cis_v1.2.0": "1.13", "cis_v3.0.0": "1.5"}
ON, OFF, NO_ROW, MISSING = (f"{n:012d}" for n in range(1, 5))


def test_root_mfa_enabled_passes(db):
    s = Snapshot(db)
    s.account(ON).account_summary(ON, mfa=1)
    s.account(OFF).account_summary(OFF, mfa=0)
    s.account(NO_ROW)
    s.account(MISSING, missing={"account_summary": "AccessDenied"}).account_summary(MISSING, mfa=1)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, check_id in IDS.items():
        assert statuses(db, LOGIC, framework) == {ON: "pass", OFF: "fail", NO_ROW: "fail", MISSING: "error"}
        assert "no MFA device" in verdicts(db, LOGIC, framework)[(framework, check_id, OFF, OFF)][1]


ALL_IDS = {"cis_v1.2.0": "1.13", "cis_v1.3.0": "1.5", "cis_v1.4.0": "1.5", "cis_v1.5.0": "1.5",
           "cis_v2.0.0": "1.5", "cis_v3.0.0": "1.5", "cis_v4.0.0": "1.5", "cis_v5.0.0": "1.4",
           "cis_v6.0.0": "2.4", "cis_v7.0.0": "2.5"}
WITHOUT_PASSWORD_PASSES = {"cis_v5.0.0", "cis_v6.0.0", "cis_v7.0.0"}
NO_PW, UNKNOWN_PW, PW, NO_ROOT_ROW, NO_REPORT, NO_PW_MFA = (f"{n:012d}" for n in range(11, 17))


def test_root_without_password_passes_from_v5(db):
    s = Snapshot(db)
    # root credentials removed: the credential report says password_enabled false
    s.account(NO_PW).account_summary(NO_PW, mfa=0).user(NO_PW, "<root_account>", is_root=True,
                                                        password_enabled=False)
    # AWS's 'not_supported' (stored NULL): the password state is unknown, which never passes
    s.account(UNKNOWN_PW).account_summary(UNKNOWN_PW, mfa=0).user(UNKNOWN_PW, "<root_account>", is_root=True)
    s.account(PW).account_summary(PW, mfa=0).user(PW, "<root_account>", is_root=True, password_enabled=True)
    s.account(NO_ROOT_ROW).account_summary(NO_ROOT_ROW, mfa=0)
    s.account(NO_REPORT, missing={"credential_report": "ReportInProgress"}).account_summary(NO_REPORT, mfa=1)
    s.account(NO_PW_MFA).account_summary(NO_PW_MFA, mfa=1).user(NO_PW_MFA, "<root_account>", is_root=True,
                                                                password_enabled=False)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, check_id in ALL_IDS.items():
        expected = "pass" if framework in WITHOUT_PASSWORD_PASSES else "fail"
        assert statuses(db, LOGIC, framework) == {
            NO_PW: expected, UNKNOWN_PW: "fail", PW: "fail", NO_ROOT_ROW: "fail",
            NO_REPORT: "error", NO_PW_MFA: "pass",
        }, framework
        got = verdicts(db, LOGIC, framework)
        assert "ReportInProgress" in got[(framework, check_id, NO_REPORT, NO_REPORT)][1]
        if framework in WITHOUT_PASSWORD_PASSES:
            assert "no password" in got[(framework, check_id, NO_PW, NO_PW)][1]
            assert "is not shown removed" in got[(framework, check_id, UNKNOWN_PW, UNKNOWN_PW)][1]
        else:
            assert "no MFA device" in got[(framework, check_id, NO_PW, NO_PW)][1]


SUMMARY_NO_PW, SUMMARY_UNKNOWN, SUMMARY_HAS_PW, BOTH_NO_PW = (f"{n:012d}" for n in range(21, 25))


def test_account_password_present_zero_passes_from_v5(db):
    """The benchmark's command-line audit: GetAccountSummary AccountPasswordPresent = 0."""
    s = Snapshot(db)
    # AWS's usual root row says password_enabled 'not_supported' (NULL): the summary decides
    s.account(SUMMARY_NO_PW).account_summary(SUMMARY_NO_PW, mfa=0, password_present=0)
    s.user(SUMMARY_NO_PW, "<root_account>", is_root=True)
    # no AccountPasswordPresent key and no password_enabled: unknown, never a pass
    s.account(SUMMARY_UNKNOWN).account_summary(SUMMARY_UNKNOWN, mfa=0, password_present=None)
    s.user(SUMMARY_UNKNOWN, "<root_account>", is_root=True)
    s.account(SUMMARY_HAS_PW).account_summary(SUMMARY_HAS_PW, mfa=0, password_present=1)
    s.user(SUMMARY_HAS_PW, "<root_account>", is_root=True)
    s.account(BOTH_NO_PW).account_summary(BOTH_NO_PW, mfa=0, password_present=0)
    s.user(BOTH_NO_PW, "<root_account>", is_root=True, password_enabled=False)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, check_id in ALL_IDS.items():
        passes = framework in WITHOUT_PASSWORD_PASSES
        assert statuses(db, LOGIC, framework) == {
            SUMMARY_NO_PW: "pass" if passes else "fail", SUMMARY_UNKNOWN: "fail", SUMMARY_HAS_PW: "fail",
            BOTH_NO_PW: "pass" if passes else "fail",
        }, framework
        if passes:
            got = verdicts(db, LOGIC, framework)
            assert "AccountPasswordPresent = 0" in got[(framework, check_id, SUMMARY_NO_PW, SUMMARY_NO_PW)][1]
            both = got[(framework, check_id, BOTH_NO_PW, BOTH_NO_PW)][1]
            assert "AccountPasswordPresent = 0 and credential report password_enabled = false" in both


MEMBER, WITH_PW = "000000000031", "000000000032"


def test_centrally_managed_root_credentials_are_named_in_the_reason(db):
    """Where the organisation's root credentials management is on, a member account whose root has no
    credentials passes from v5.0.0 (v7.0.0 2.5 included) and the reason says why; the feature never
    turns a root with a password into a pass, and without the organisation data nothing changes."""
    s = Snapshot(db)
    s.account(MEMBER).account_summary(MEMBER, mfa=0, password_present=0)
    s.user(MEMBER, "<root_account>", is_root=True, password_enabled=False)
    s.account(WITH_PW).account_summary(WITH_PW, mfa=0, password_present=1)
    s.organization(features=("RootCredentialsManagement",))
    s.commit()
    for logic in (LOGIC, "root_hardware_mfa"):
        run_check(db, logic, SNAPSHOT)
        got = verdicts(db, logic)
        for framework in WITHOUT_PASSWORD_PASSES:
            (member,) = [v for (f, _, a, _), v in got.items() if f == framework and a == MEMBER]
            assert member[0] == "pass" and "centrally managed by the organisation" in member[1], (logic, framework)
            (other,) = [v for (f, _, a, _), v in got.items() if f == framework and a == WITH_PW]
            assert other[0] == "fail", (logic, framework)
        assert {v[0] for (f, _, a, _), v in got.items() if a == MEMBER and f == "cis_v4.0.0"} == {"fail"}
    db.execute("DELETE FROM iam_stage.organization_features")
    db.commit()
    run_check(db, LOGIC, SNAPSHOT)
    reason = verdicts(db, LOGIC, "cis_v7.0.0")[("cis_v7.0.0", "2.5", MEMBER, MEMBER)]
    assert reason[0] == "pass" and "centrally managed" not in reason[1]
