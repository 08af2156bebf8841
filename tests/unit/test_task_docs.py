"""Check task docs fit Airflow's narrow docs panel: the control's text first, version numbers compactly after."""

from iam_audit.evaluate.catalogue import load_catalogue

CATALOGUE = load_catalogue()


def test_text_first_numbers_after_no_table():
    for check in CATALOGUE.checks:
        doc = check.doc_md()
        order = [doc.index(label) for label in ("**Checks:**", "**Why:**", "**Fix:**", "**Numbers:**")]
        assert order == sorted(order), check.logic
        assert not any(line.lstrip().startswith("|") for line in doc.splitlines()), check.logic
        numbers = next(line for line in doc.splitlines() if line.startswith("**Numbers:**"))
        for control in check.controls:
            label = control.framework.removeprefix("cis_")
            assert f"{label} {control.check_id}" in numbers, (check.logic, control.framework)


def test_numbers_line_names_each_framework_family_once():
    doc = CATALOGUE.check("root_mfa").doc_md()
    numbers = next(line for line in doc.splitlines() if line.startswith("**Numbers:**"))
    assert numbers == ("**Numbers:** CIS v1.2.0 1.13 · v1.3.0 1.5 · v1.4.0 1.5 · v1.5.0 1.5 · v2.0.0 1.5 · "
                       "v3.0.0 1.5 · v4.0.0 1.5 · v5.0.0 1.4 · v6.0.0 2.4 · v7.0.0 2.5")
    # versions that share a title or params are grouped, ranges when consecutive
    assert "v1.4.0–v7.0.0: Ensure MFA is enabled for the 'root' user account" in doc
    assert "v5.0.0–v7.0.0 `{\"pass_without_password\": true}`" in doc
