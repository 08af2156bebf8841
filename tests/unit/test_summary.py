"""The demo's and summarize's compliance summary: one table of controls with each framework's number
in its own column, a score per framework, resources counted once per logic, ellipses where text is cut."""

from datetime import date

from iam_audit.reporting.summary import build_summary, clip, format_summary
from tests.bi.results import put

DAY = date(2026, 11, 29)
A = "111111111111"
ALICE, BOB = f"arn:aws:iam::{A}:user/alice", f"arn:aws:iam::{A}:user/bob"


def test_one_table_of_controls_and_a_score_per_framework(db):
    long_reason = "alice has a console password and no MFA device " + "x" * 300
    with db.transaction():
        put(db, DAY, A, ALICE, "fail", framework="cis_v1.2.0", check_id="1.2", reason=long_reason)
        put(db, DAY, A, ALICE, "pass", framework="cis_v3.0.0", check_id="1.10")  # worst verdict: fail
        put(db, DAY, A, BOB, "pass", framework="cis_v1.2.0", check_id="1.2")
        put(db, DAY, A, BOB, "pass", framework="cis_v3.0.0", check_id="1.10")
        put(db, DAY, A, A, "error", framework="cis_v3.0.0", check_id="1.10", resource_type="account")
    summary = build_summary(db, DAY)
    text = format_summary(summary, width=160, raw_location=f"s3://bucket/iam/snapshot_date={DAY}/")

    assert f"s3://bucket/iam/snapshot_date={DAY}/" in text and "YYYY-MM-DD" not in text
    scores = {f["framework"]: (f["score"], f["error"]) for f in summary.frameworks}
    assert scores["cis_v1.2.0"] == (50.0, 0) and scores["cis_v3.0.0"] == (100.0, 1)  # errors apart
    row = next(r for r in summary.logics if r["logic"] == "console_users_mfa")
    assert (row["pass"], row["fail"], row["error"]) == (1, 1, 1)
    assert row["ids"]["cis_v1.2.0"] == "1.2" and row["ids"]["cis_v3.0.0"] == "1.10"

    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("check logic"))
    assert header.index("v1.2.0") < header.index("v3.0.0") < header.index("hygiene") < header.index("pass")
    assert sum(line.startswith("check logic") for line in lines) == 1, "one table of controls, not one per framework"
    mfa = next(line for line in lines if line.startswith("console_users_mfa"))
    assert mfa.split()[2] == "1.2" and mfa.split()[7] == "1.10"  # columns v1.2.0 .. v3.0.0
    assert all(len(line) <= 160 for line in lines), [line for line in lines if len(line) > 160]
    finding = next(line for line in lines if "alice has a console password" in line)
    assert finding.endswith("…")
    assert summary.accounts[0]["score"] == 75.0  # 3 pass / (3 pass + 1 fail); the error apart


def test_clip_marks_what_it_cuts():
    assert clip("short", 10) == "short"
    assert clip("a longer sentence", 8) == "a longe…" and len(clip("a longer sentence", 8)) == 8
