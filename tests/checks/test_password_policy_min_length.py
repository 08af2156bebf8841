from .password_policy_cases import assert_verdicts, run_variants
from .staging import verdicts

LOGIC = "password_policy_min_length"
IDS = {"cis_v1.2.0": "1.9", "cis_v1.3.0": "1.8", "cis_v1.4.0": "1.8", "cis_v1.5.0": "1.8",
       "cis_v2.0.0": "1.8", "cis_v3.0.0": "1.8", "cis_v4.0.0": "1.8", "cis_v5.0.0": "1.7",
       "cis_v6.0.0": "2.7", "cis_v7.0.0": "2.8"}
L13, L14, L15, L128, UNSET = (f"2000000000{n:02d}" for n in (13, 14, 15, 99, 0))


def test_minimum_length_14_or_more(db):
    run_variants(
        db,
        LOGIC,
        {
            L13: {"minimum_password_length": 13},
            L14: {"minimum_password_length": 14},
            L15: {"minimum_password_length": 15},
            L128: {"minimum_password_length": 128},
            UNSET: {"minimum_password_length": None},
        },
    )
    assert_verdicts(db, LOGIC, IDS, {L13: "fail", L14: "pass", L15: "pass", L128: "pass", UNSET: "fail"})
    reason = verdicts(db, LOGIC)[("cis_v3.0.0", "1.8", L13, L13)][1]
    assert "13" in reason and "14" in reason
