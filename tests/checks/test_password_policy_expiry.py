from .password_policy_cases import assert_verdicts, run_variants
from .staging import verdicts

LOGIC = "password_policy_expiry"
IDS = {"cis_v1.2.0": "1.11"}
D1, D89, D90, D91, D365, OFF, ZERO = (f"2000000{n:05d}" for n in (1, 89, 90, 91, 365, 0, 99999))


def test_expiry_within_90_days_inclusive(db):
    # the "< 90" trap: 90 days must pass, 91 must fail
    run_variants(
        db,
        LOGIC,
        {
            D1: {"max_password_age": 1},
            D89: {"max_password_age": 89},
            D90: {"max_password_age": 90},
            D91: {"max_password_age": 91},
            D365: {"max_password_age": 365},
            OFF: {"expire_passwords": False, "max_password_age": None},
            ZERO: {"expire_passwords": True, "max_password_age": 0},
        },
    )
    assert_verdicts(
        db,
        LOGIC,
        IDS,
        {D1: "pass", D89: "pass", D90: "pass", D91: "fail", D365: "fail", OFF: "fail", ZERO: "fail"},
    )
    got = verdicts(db, LOGIC)
    assert "91" in got[("cis_v1.2.0", "1.11", D91, D91)][1]
    assert "does not expire" in got[("cis_v1.2.0", "1.11", OFF, OFF)][1]


def test_max_age_without_expire_flag_fails(db):
    run_variants(db, LOGIC, {D90: {"expire_passwords": False, "max_password_age": 90}})
    assert_verdicts(db, LOGIC, IDS, {D90: "fail"})
