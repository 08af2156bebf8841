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
