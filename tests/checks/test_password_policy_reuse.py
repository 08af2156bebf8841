from .password_policy_cases import assert_verdicts, run_variants
from .staging import verdicts

LOGIC = "password_policy_reuse"
IDS = {"cis_v1.2.0": "1.10", "cis_v1.3.0": "1.9", "cis_v1.4.0": "1.9", "cis_v1.5.0": "1.9",
       "cis_v2.0.0": "1.9", "cis_v3.0.0": "1.9", "cis_v4.0.0": "1.9", "cis_v5.0.0": "1.8",
       "cis_v6.0.0": "2.8", "cis_v7.0.0": "2.9"}
R23, R24, R1, UNSET = "200000000023", "200000000024", "200000000001", "200000000000"


def test_24_remembered_passes_not_only_more_than_24(db):
    # the "> 24" trap: 24 is the IAM maximum and must pass
    run_variants(
        db,
        LOGIC,
        {
            R23: {"password_reuse_prevention": 23},
            R24: {"password_reuse_prevention": 24},
            R1: {"password_reuse_prevention": 1},
            UNSET: {"password_reuse_prevention": None},
        },
    )
    assert_verdicts(db, LOGIC, IDS, {R23: "fail", R24: "pass", R1: "fail", UNSET: "fail"})
    got = verdicts(db, LOGIC)
    assert (
        "23" in got[("cis_v1.2.0", "1.10", R23, R23)][1] and "24" in got[("cis_v1.2.0", "1.10", R23, R23)][1]
    )
    assert "not set" in got[("cis_v3.0.0", "1.9", UNSET, UNSET)][1]
