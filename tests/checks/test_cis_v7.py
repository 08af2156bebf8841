"""CIS v7.0.0 is evaluated under its own numbers by the logics it shares with v6.0.0: on the rich
account of the catalogue test every v7.0.0 control gets the same verdict per resource as its v6.0.0
twin (whose fixture tests pin pass and fail), and an account without data gets 'error' only."""

from iam_audit.database import run_check
from iam_audit.evaluate.catalogue import load_catalogue

from .staging import SNAPSHOT, Snapshot, verdicts
from .test_catalogue_consistency import A, B, rich_account

CATALOGUE = load_catalogue()
V7 = {c.logic: c.check_id for c in CATALOGUE.all_controls() if c.framework == "cis_v7.0.0" and c.logic}
V6 = {c.logic: c.check_id for c in CATALOGUE.all_controls() if c.framework == "cis_v6.0.0" and c.logic}
DATASETS = ("credential_report", "authorization_details", "password_policy", "account_summary",
            "virtual_mfa_devices", "access_keys", "server_certificates", "regions", "access_analyzers")


def test_every_v7_logic_passes_fails_and_errors_like_v6(db):
    s = Snapshot(db)
    rich_account(s, A)
    s.account(B, missing={dataset: "AccessDenied" for dataset in DATASETS})
    s.commit()
    seen = set()
    for logic, check_id in V7.items():
        run_check(db, logic, SNAPSHOT)
        rows = verdicts(db, logic)
        v7 = {(a, r): status for (f, c, a, r), (status, _) in rows.items() if f == "cis_v7.0.0"}
        v6 = {(a, r): status for (f, c, a, r), (status, _) in rows.items() if f == "cis_v6.0.0"}
        assert {c for (f, c, _, _) in rows if f == "cis_v7.0.0"} == {check_id}, logic
        assert v7 == v6 and v7, logic
        assert {status for (a, _), status in v7.items() if a == B} == {"error"}, logic
        seen |= {status for (a, _), status in v7.items() if a == A}
    assert seen == {"pass", "fail"}
