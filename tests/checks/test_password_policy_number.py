from .password_policy_cases import assert_verdicts, run_variants
from .staging import verdicts

LOGIC = "password_policy_number"
IDS = {"cis_v1.2.0": "1.8"}
OFF, UNSET = "200000000001", "200000000002"


def test_number_required(db):
    run_variants(db, LOGIC, {OFF: {"require_numbers": False}, UNSET: {"require_numbers": None}})
    assert_verdicts(db, LOGIC, IDS, {OFF: "fail", UNSET: "fail"})
    assert "number" in verdicts(db, LOGIC)[("cis_v1.2.0", "1.8", OFF, OFF)][1]


def test_other_settings_do_not_matter(db):
    weak_elsewhere = {
        "minimum_password_length": 6,
        "password_reuse_prevention": None,
        "expire_passwords": False,
        "max_password_age": None,
    }
    run_variants(db, LOGIC, {OFF: weak_elsewhere})
    assert_verdicts(db, LOGIC, IDS, {OFF: "pass"})
