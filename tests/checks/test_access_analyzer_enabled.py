from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, verdicts

LOGIC = "access_analyzer_enabled"
FULL, GAP, MANY, NO_REGIONS, NOT_ACTIVE, MISSING = (f"{n:012d}" for n in range(1, 7))


def _verdicts(db):
    return {a: v for (_, _, a, _), v in verdicts(db, LOGIC, "cis_v3.0.0").items()}


def test_every_enabled_region_needs_an_active_analyzer(db):
    s = Snapshot(db)
    s.account(FULL)
    s.region(FULL, "us-east-1").region(FULL, "eu-west-1", "opted-in").region(FULL, "eu-south-1", None)
    s.region(FULL, "ap-east-1", "not-opted-in")  # not enabled: no analyzer needed
    for region in ("us-east-1", "eu-west-1", "eu-south-1"):
        s.analyzer(FULL, region, analyzer_type="ORGANIZATION")
    s.analyzer(FULL, "us-east-1", status="DISABLED", name="old")  # an extra inactive one does not hurt
    s.account(GAP)
    s.region(GAP, "us-east-1").region(GAP, "eu-west-1", "opted-in").region(GAP, "me-south-1", None)
    s.analyzer(GAP, "us-east-1").analyzer(GAP, "ap-east-1")  # analyzer in a region not listed
    s.account(MANY)
    for n in range(12):
        s.region(MANY, f"xx-region-{n:02d}")
    s.account(NO_REGIONS)
    s.account(NOT_ACTIVE).region(NOT_ACTIVE, "us-east-1").analyzer(NOT_ACTIVE, "us-east-1", status="CREATING")
    s.account(MISSING, missing={"access_analyzers": "AccessDenied"}).region(MISSING, "us-east-1")
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    got = _verdicts(db)
    assert {a: v[0] for a, v in got.items()} == {
        FULL: "pass",
        GAP: "fail",
        MANY: "fail",
        NO_REGIONS: "fail",
        NOT_ACTIVE: "fail",
        MISSING: "error",
    }
    assert "2 of 3" in got[GAP][1] and "eu-west-1" in got[GAP][1] and "me-south-1" in got[GAP][1]
    assert "us-east-1" not in got[GAP][1]
    many = got[MANY][1]
    assert "12 of 12" in many and "and 2 more" in many
    assert "xx-region-09" in many and "xx-region-10" not in many
    assert "us-east-1" in got[NOT_ACTIVE][1]
    assert verdicts(db, LOGIC, "cis_v1.2.0") == {}


ONE_REGION, UNUSED_ONLY, INTERNAL_MIXED, UNTYPED = (f"{n:012d}" for n in range(11, 15))
ALL_IDS = {"cis_v1.3.0": "1.21", "cis_v1.4.0": "1.20", "cis_v1.5.0": "1.20", "cis_v2.0.0": "1.20",
           "cis_v3.0.0": "1.20", "cis_v4.0.0": "1.20", "cis_v5.0.0": "1.19", "cis_v6.0.0": "2.19",
           "cis_v7.0.0": "2.18"}


def test_v1_3_needs_one_region_and_only_external_access_analyzers_count(db):
    s = Snapshot(db)
    # v1.3.0 asks for one active analyzer; "all regions" arrives in v1.4.0
    s.account(ONE_REGION).region(ONE_REGION, "us-east-1").region(ONE_REGION, "eu-west-1")
    s.analyzer(ONE_REGION, "eu-west-1")
    # unused-access analyzers are not external access analyzers, in any version
    s.account(UNUSED_ONLY).region(UNUSED_ONLY, "us-east-1")
    s.analyzer(UNUSED_ONLY, "us-east-1", analyzer_type="ACCOUNT_UNUSED_ACCESS", name="unused")
    s.account(INTERNAL_MIXED).region(INTERNAL_MIXED, "us-east-1").region(INTERNAL_MIXED, "eu-west-1")
    s.analyzer(INTERNAL_MIXED, "us-east-1", analyzer_type="ORGANIZATION")
    s.analyzer(INTERNAL_MIXED, "eu-west-1", analyzer_type="ORGANIZATION_INTERNAL_ACCESS", name="internal")
    # a type that was not recorded is unknown and never counts
    s.account(UNTYPED).region(UNTYPED, "us-east-1")
    s.row("access_analyzers", UNTYPED, region_name="us-east-1", analyzer_name="x", status="ACTIVE",
          analyzer_arn=f"arn:aws:access-analyzer:us-east-1:{UNTYPED}:analyzer/x", analyzer_type=None)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework, check_id in ALL_IDS.items():
        got = verdicts(db, LOGIC, framework)
        v13 = framework == "cis_v1.3.0"
        assert {a: v[0] for (_, _, a, _), v in got.items()} == {
            ONE_REGION: "pass" if v13 else "fail", UNUSED_ONLY: "fail",
            INTERNAL_MIXED: "pass" if v13 else "fail", UNTYPED: "fail",
        }, framework
        unused = got[(framework, check_id, UNUSED_ONLY, UNUSED_ONLY)][1]
        assert "ACCOUNT or ORGANIZATION" in unused and "ACCOUNT_UNUSED_ACCESS analyzer unused" in unused
        if v13:
            assert "1 of 2 enabled regions (eu-west-1)" in got[(framework, check_id, ONE_REGION, ONE_REGION)][1]
        else:
            mixed = got[(framework, check_id, INTERNAL_MIXED, INTERNAL_MIXED)][1]
            assert "1 of 2" in mixed and "eu-west-1 has only ORGANIZATION_INTERNAL_ACCESS analyzer internal" in mixed
