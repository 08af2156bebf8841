from .password_policy_cases import assert_verdicts, run_variants
from .staging import verdicts

LOGIC = "password_policy_lowercase"
IDS = {"cis_v1.2.0": "1.6"}
OFF, UNSET = "200000000001", "200000000002"


def test_lowercase_required(db):
    run_variants(
        db,
        LOGIC,
        {OFF: {"require_lowercase_characters": False}, UNSET: {"require_lowercase_characters": None}},
    )
    assert_verdicts(db, LOGIC, IDS, {OFF: "fail", UNSET: "fail"})
    assert "lowercase" in verdicts(db, LOGIC)[("cis_v1.2.0", "1.6", OFF, OFF)][1]


def test_other_settings_do_not_matter(db):
    weak_elsewhere = {
        "minimum_password_length": 6,
        "password_reuse_prevention": None,
        "expire_passwords": False,
        "max_password_age": None,
    }
    run_variants(db, LOGIC, {OFF: weak_elsewhere})
    assert_verdicts(db, LOGIC, IDS, {OFF: "pass"})
