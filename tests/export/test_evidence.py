"""The evidence pack: every control, verdict and exception of a date, the raw objects read back and
matched to their manifests' hashes, byte-identical when exported again, refused when evidence is bad."""

import csv
import hashlib
import json
import zipfile
from datetime import UTC, date, datetime

import pytest
from bi.results import D2, D3, A, B, add_exception, history, put, user
from checks.staging import Snapshot

from iam_audit.export.evidence import EvidenceIntegrityError, build_pack, evidence_key
from iam_audit.export.ocsf import NothingToExport
from iam_audit.ingest import layout
from iam_audit.ingest.extract import DatasetResult
from iam_audit.ingest.snapshot import write_account_snapshot


class Store(dict):
    """Raw objects by key, with the raw store's put and a read that raises LookupError when missing."""

    def put(self, key, data, content_type=None):
        self[key] = data

    def read(self, key):
        return self[key]


def snapshots(store: Store, day: date, accounts=(A, B)) -> None:
    for account_id in accounts:
        results = {"credential_report": DatasetResult("credential_report", "ok", {"Content": f"user,{account_id}"}),
                   "password_policy": DatasetResult("password_policy", "error", None, "AccessDenied", "no")}
        write_account_snapshot(store, "iam", day, account_id, "acct", results, "run",
                               datetime(day.year, day.month, day.day, 5, tzinfo=UTC))
    store.put(layout.organization_key("iam", day), layout.encode([{"Id": a} for a in accounts]))


def seeded(db) -> Store:
    history(db)
    Snapshot(db, D3).account(A, name="production").account(B, name="sandbox")
    put(db, D3, A, user(A, "root"), "fail", framework="cis_v1.2.0", check_id="1.13", severity="critical",
        resource_type="account", reason='root has no MFA, "quoted", and a comma')
    db.commit()
    add_exception(db, resource_pattern="%/erin", expires_on=D3, reason="leaver, deleted on Monday")
    add_exception(db, resource_pattern="%/zed", expires_on=D2, reason="expired before D3")
    store = Store()
    snapshots(store, D3)
    return store


def rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_pack_holds_controls_verdicts_exceptions_and_checked_raw_objects(db, tmp_path):
    store = seeded(db)
    archive = build_pack(db, store.read, "iam", D3, tmp_path)
    folder = tmp_path / "evidence-2026-11-05"
    assert archive == tmp_path / "evidence-2026-11-05.zip"
    verdicts = rows(folder / "verdicts.csv")
    assert len(verdicts) == db.execute("SELECT count(*) FROM aws_policy_results WHERE snapshot_date = %s",
                                       (D3,)).fetchone()[0]
    erin = next(v for v in verdicts if v["resource_id"] == user(A, "erin"))
    assert (erin["status"], erin["effective_status"], erin["account_name"]) == ("fail", "muted", "production")
    root = next(v for v in verdicts if v["check_id"] == "1.13")
    assert root["reason"] == 'root has no MFA, "quoted", and a comma'     # CSV quoting round-trips
    exceptions = rows(folder / "exceptions.csv")
    assert [e["reason"] for e in exceptions] == ["leaver, deleted on Monday"]   # the expired one is not in force
    controls = {(c["framework"], c["check_id"]): c for c in rows(folder / "controls.csv")}
    assert controls[("cis_v3.0.0", "1.10")]["fail"] == "5" and controls[("cis_v3.0.0", "1.10")]["muted"] == "1"
    manual = [c for c in controls.values() if c["assessment"] == "manual"]
    assert manual and all(c["evaluated"] in ("yes", "no (a person assesses it)") for c in manual)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(o["key"] for o in manifest["raw"]["objects"]) == sorted(
        layout.dataset_key("iam", D3, a, "credential_report") for a in (A, B))
    assert all(o["sha256"] for o in manifest["raw"]["objects"]) and len(manifest["raw"]["manifests"]) == 2
    assert set(manifest["files"]) == {"controls.csv", "verdicts.csv", "exceptions.csv", "manual_evidence.csv",
                                      "summary.html"}
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == sorted(f"evidence-2026-11-05/{f}" for f in
                                              [*manifest["files"], "manifest.json"])
    page = (folder / "summary.html").read_text()
    assert "cis_v3.0.0" in page and "cis_v1.2.0" in page and "<script" not in page


def test_exporting_a_date_again_gives_identical_bytes(db, tmp_path):
    store = seeded(db)
    first = build_pack(db, store.read, "iam", D3, tmp_path / "a").read_bytes()
    second = build_pack(db, store.read, "iam", D3, tmp_path / "b").read_bytes()
    assert first == second
    for name in ("verdicts.csv", "controls.csv", "exceptions.csv", "manifest.json"):
        assert (tmp_path / "a/evidence-2026-11-05" / name).read_bytes() == \
               (tmp_path / "b/evidence-2026-11-05" / name).read_bytes()


def test_one_framework(db, tmp_path):
    store = seeded(db)
    build_pack(db, store.read, "iam", D3, tmp_path, framework="cis_v1.2.0")
    folder = tmp_path / "evidence-2026-11-05-cis_v1.2.0"
    assert {v["framework"] for v in rows(folder / "verdicts.csv")} == {"cis_v1.2.0"}
    assert {c["framework"] for c in rows(folder / "controls.csv")} == {"cis_v1.2.0"}
    with pytest.raises(ValueError, match="cis_v9.9.9"):
        build_pack(db, store.read, "iam", D3, tmp_path, framework="cis_v9.9.9")


def test_a_changed_raw_object_is_refused_by_name_and_no_pack_is_left(db, tmp_path):
    store = seeded(db)
    key = layout.dataset_key("iam", D3, A, "credential_report")
    store[key] = layout.encode({"Content": "user,evil-admin"})
    with pytest.raises(EvidenceIntegrityError, match=key):
        build_pack(db, store.read, "iam", D3, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_without_hashes_or_a_missing_object_is_refused(db, tmp_path):
    store = seeded(db)
    manifest_key = layout.manifest_key("iam", D3, B)
    manifest = json.loads(store[manifest_key])
    manifest["format"] = 1
    del manifest["datasets"]["credential_report"]["sha256"]
    store[manifest_key] = json.dumps(manifest).encode()
    with pytest.raises(EvidenceIntegrityError, match="records no SHA-256"):
        build_pack(db, store.read, "iam", D3, tmp_path)
    store = seeded_store_without(db, layout.dataset_key("iam", D3, A, "credential_report"))
    with pytest.raises(EvidenceIntegrityError, match="is missing"):
        build_pack(db, store.read, "iam", D3, tmp_path)


def seeded_store_without(db, key) -> Store:
    store = Store()
    snapshots(store, D3)
    del store[key]
    return store


def test_a_date_without_verdicts_is_refused(db, tmp_path):
    history(db)
    with pytest.raises(NothingToExport, match="2026-11-04"):
        build_pack(db, Store().read, "iam", date(2026, 11, 4), tmp_path)


def test_an_account_never_extracted_is_listed_one_with_data_must_have_its_snapshot(db, tmp_path):
    store = seeded(db)
    c = "333333333333"
    put(db, D3, c, c, "error", framework="cis_v1.2.0", check_id="1.2", resource_type="account",
        reason="Could not evaluate: the audit role could not be assumed")
    db.commit()
    build_pack(db, store.read, "iam", D3, tmp_path)
    manifest = json.loads((tmp_path / "evidence-2026-11-05/manifest.json").read_text())
    assert manifest["raw"]["accounts_without_snapshot"] == [c]
    del store[layout.manifest_key("iam", D3, B)]                # B's verdicts came from data
    with pytest.raises(EvidenceIntegrityError, match=f"account_id={B}/_manifest.json is missing"):
        build_pack(db, store.read, "iam", D3, tmp_path)
    assert evidence_key("iam", D3) == "iam/snapshot_date=2026-11-05/exports/evidence/evidence-2026-11-05.zip"


def test_the_organisation_data_sets_are_checked_against_their_manifest(db, tmp_path):
    from iam_audit.ingest.organization import write_organization

    store = seeded(db)
    write_organization(store, "iam", D3, {"organization_units": {"status": "ok", "payload": {"roots": []}}}, "run")
    build_pack(db, store.read, "iam", D3, tmp_path / "a")
    manifest = json.loads((tmp_path / "a/evidence-2026-11-05/manifest.json").read_text())
    assert "iam/snapshot_date=2026-11-05/organization/organization_units.json.gz" in {
        o["key"] for o in manifest["raw"]["objects"]}
    store["iam/snapshot_date=2026-11-05/organization/organization_units.json.gz"] = layout.encode({"roots": ["x"]})
    with pytest.raises(EvidenceIntegrityError, match="organization_units.json.gz does not match"):
        build_pack(db, store.read, "iam", D3, tmp_path / "b")


def test_a_manifest_rewritten_with_its_data_is_refused_by_the_live_loads_digest(db, tmp_path):
    """The bucket's writer can rewrite a data set and its manifest together; the SHA-256 the live load
    recorded in PostgreSQL (iam_audit_evidence_digests) still tells."""
    from iam_audit.ingest.load import record_digest_rows

    store = seeded(db)
    url = lambda key: f"s3://evidence-test/{key}"  # noqa: E731
    manifest_key = layout.manifest_key("iam", D3, A)
    with db.cursor() as cur:
        record_digest_rows(cur, D3, [(url(manifest_key), hashlib.sha256(store[manifest_key]).hexdigest(), "run")])
    db.commit()
    build_pack(db, store.read, "iam", D3, tmp_path / "a", url=url)
    listed = json.loads((tmp_path / "a/evidence-2026-11-05/manifest.json").read_text())["raw"]["manifests"]
    assert {m["account_id"]: m["matches_live_load_digest"] for m in listed} == {A: True, B: False}
    # the data set and its manifest rewritten together: they agree with each other, not with the load
    write_account_snapshot(store, "iam", D3, A, "acct",
                           {"credential_report": DatasetResult("credential_report", "ok", {"Content": "evil"})},
                           "run", datetime(2026, 11, 5, 9, tzinfo=UTC))
    with pytest.raises(EvidenceIntegrityError, match="differs from the SHA-256 recorded at the live load"):
        build_pack(db, store.read, "iam", D3, tmp_path / "b", url=url)
