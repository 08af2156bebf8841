from datetime import timedelta

from iam_audit.database import run_check

from .staging import AS_OF, SNAPSHOT, Snapshot, day_of, days_ago, statuses, verdicts

LOGIC = "expired_server_certificates"
A, B, C = "111111111111", "222222222222", "333333333333"


def cert(name: str) -> str:
    return f"arn:aws:iam::{A}:server-certificate/{name}"


def test_expired_certificates_fail(db):
    s = Snapshot(db).account(A).account(B, missing={"server_certificates": "AccessDenied"}).account(C)
    s.server_certificate(A, "expired-long-ago", days_ago(400))
    s.server_certificate(A, "expired-a-second-ago", AS_OF - timedelta(seconds=1))
    s.server_certificate(A, "expires-at-as-of", AS_OF)
    s.server_certificate(A, "valid-tomorrow", days_ago(-1))
    s.server_certificate(A, "valid-next-year", days_ago(-365))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, "cis_v3.0.0") == {
        cert("expired-long-ago"): "fail",
        cert("expired-a-second-ago"): "fail",
        cert("expires-at-as-of"): "pass",
        cert("valid-tomorrow"): "pass",
        cert("valid-next-year"): "pass",
        B: "error",
    }  # C has none: no rows
    reason = verdicts(db, LOGIC)[("cis_v3.0.0", "1.19", A, cert("expired-long-ago"))][1]
    assert "expired-long-ago" in reason and f"expired on {day_of(400)} 06:00 UTC, before the snapshot" in reason
    reason = verdicts(db, LOGIC)[("cis_v3.0.0", "1.19", A, cert("valid-tomorrow"))][1]
    assert f"had not expired at the snapshot; it expires on {day_of(-1)} 06:00 UTC" in reason
    assert statuses(db, LOGIC, "cis_v1.2.0") == {}
