"""docs/controls.md is what the catalogue generates, and the catalogue knows every CIS version."""

from iam_audit_dev.docs import CONTROLS_DOC, REGENERATE, render_controls_markdown

from iam_audit.evaluate.catalogue import load_catalogue

CATALOGUE = load_catalogue()
VERSIONS = ("cis_v1.2.0", "cis_v1.3.0", "cis_v1.4.0", "cis_v1.5.0", "cis_v2.0.0", "cis_v3.0.0",
            "cis_v4.0.0", "cis_v5.0.0", "cis_v6.0.0", "cis_v7.0.0")


def _ids(logic: str) -> dict[str, str]:
    return {c.framework: c.check_id for c in CATALOGUE.check(logic).controls}


def _params(logic: str, key: str) -> dict:
    return {c.framework: c.params.get(key) for c in CATALOGUE.check(logic).controls}


def test_controls_doc_is_up_to_date():
    expected = render_controls_markdown(CATALOGUE)
    actual = CONTROLS_DOC.read_text(encoding="utf-8") if CONTROLS_DOC.is_file() else ""
    assert actual == expected, f"docs/controls.md is out of date: run `{REGENERATE}`"


def test_every_version_has_automated_controls():
    for version in VERSIONS:
        automated = [c for check in CATALOGUE.checks for c in check.controls
                     if c.framework == version and c.assessment == "automated"]
        assert automated, f"{version} has no automated control"


def test_root_mfa_numbers_per_version():
    assert _ids("root_mfa") == {
        "cis_v1.2.0": "1.13", "cis_v1.3.0": "1.5", "cis_v1.4.0": "1.5", "cis_v1.5.0": "1.5",
        "cis_v2.0.0": "1.5", "cis_v3.0.0": "1.5", "cis_v4.0.0": "1.5", "cis_v5.0.0": "1.4",
        "cis_v6.0.0": "2.4", "cis_v7.0.0": "2.5",
    }
    # the root-credentials-removed pass exists from v5.0.0 only
    assert {f for f, v in _params("root_mfa", "pass_without_password").items() if v} == {
        "cis_v5.0.0", "cis_v6.0.0", "cis_v7.0.0"}


def test_unused_credential_thresholds_per_version():
    thresholds = _params("credentials_unused", "max_unused_days")
    assert thresholds == {v: 90 if v in ("cis_v1.2.0", "cis_v1.3.0") else 45 for v in VERSIONS}
    for control in CATALOGUE.check("credentials_unused").controls:
        assert f"{thresholds[control.framework]} days" in control.title


def test_v1_2_0_only_controls():
    for logic in ("password_policy_uppercase", "password_policy_lowercase", "password_policy_symbol",
                  "password_policy_number", "password_policy_expiry"):
        assert CATALOGUE.check(logic).frameworks == ("cis_v1.2.0",), logic


def test_iam_is_section_2_in_v6_and_v7():
    for version in ("cis_v6.0.0", "cis_v7.0.0"):
        controls = [c for c in CATALOGUE.all_controls() if c.framework == version]
        assert controls and all(c.check_id.startswith("2.") for c in controls)


# v7.0.0's IAM section as its text numbers it (Prowler's cis_7.0_aws.json carries the benchmark's
# description and audit of each): number -> (logic or None for a person, assessment, level).
V7 = {
    "2.1.1": (None, "manual", "L2"), "2.1.2": (None, "manual", "L2"), "2.1.3": (None, "manual", "L2"),
    "2.1.4": (None, "manual", "L2"), "2.1.5": (None, "manual", "L2"), "2.1.6": (None, "manual", "L2"),
    "2.2": (None, "manual", "L1"), "2.3": (None, "manual", "L1"),
    "2.4": ("root_access_keys", "automated", "L1"), "2.5": ("root_mfa", "automated", "L1"),
    "2.6": ("root_hardware_mfa", "manual", "L2"), "2.7": ("root_account_usage", "manual", "L1"),
    "2.8": ("password_policy_min_length", "automated", "L1"), "2.9": ("password_policy_reuse", "automated", "L1"),
    "2.10": ("console_users_mfa", "automated", "L1"), "2.11": ("credentials_unused", "automated", "L1"),
    "2.12": ("access_keys_rotated", "automated", "L1"),
    "2.13": ("policies_on_groups_or_roles_only", "automated", "L1"),
    "2.14": ("no_full_admin_policies", "automated", "L1"), "2.15": ("support_role", "automated", "L1"),
    "2.16": (None, "manual", "L2"), "2.17": ("expired_server_certificates", "automated", "L1"),
    "2.18": ("access_analyzer_enabled", "automated", "L1"), "2.19": (None, "manual", "L2"),
    "2.20": ("cloudshell_full_access", "manual", "L1"), "2.21": (None, "manual", "L1"),
}


def test_v7_numbers_logics_levels_and_statuses():
    v7 = {c.check_id: (c.logic, c.assessment, c.level) for c in CATALOGUE.all_controls()
          if c.framework == "cis_v7.0.0"}
    assert v7 == V7


def test_v7_keeps_v6_thresholds_and_drops_two_controls():
    v6 = {c.logic: c for c in CATALOGUE.all_controls() if c.framework == "cis_v6.0.0" and c.logic}
    v7 = {c.logic: c for c in CATALOGUE.all_controls() if c.framework == "cis_v7.0.0" and c.logic}
    assert set(v6) - set(v7) == {"one_active_access_key", "access_keys_initial_setup"}
    for logic, control in v7.items():
        assert control.params == v6[logic].params, logic


def test_every_cis_logic_explains_itself():
    for check in CATALOGUE.checks:
        if any(c.framework.startswith("cis_") for c in check.controls):
            assert check.audit and check.summary and check.rationale and check.remediation, check.logic
            doc = check.doc_md()
            for text in (check.audit, check.rationale, check.remediation, check.severity, *check.needs):
                assert text in doc, (check.logic, text)
            for control in check.controls:
                assert control.title in doc


def test_titles_as_the_benchmarks_write_them():
    def title(logic, framework):
        return next(c.title for c in CATALOGUE.check(logic).controls if c.framework == framework)

    for framework in ("cis_v4.0.0", "cis_v5.0.0", "cis_v6.0.0"):
        assert title("policies_on_groups_or_roles_only", framework) == (
            "Ensure IAM users receive permissions only through groups")
    assert title("access_analyzer_enabled", "cis_v4.0.0") == (
        "Ensure that IAM Access Analyzer is enabled for all regions")
    assert title("access_analyzer_enabled", "cis_v1.3.0") == "Ensure that IAM Access analyzer is enabled"


def test_access_analyzer_remediation_passes_member_accounts():
    """An ORGANIZATION analyzer is invisible to member accounts: the advice must be one that passes there."""
    check = CATALOGUE.check("access_analyzer_enabled")
    assert "type ACCOUNT" in check.remediation and "member accounts" in check.remediation
    assert "account or organisation zone of trust" not in check.remediation
    assert check.remediation in check.doc_md()
