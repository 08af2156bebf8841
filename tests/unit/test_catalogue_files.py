"""The catalogue's files (src/iam_audit/sql/catalogue/frameworks and controls): every malformed file is a
load error naming the file and the key; the versions already shipped keep their exact mapping."""

import copy
import hashlib
import json

import pytest

from iam_audit.evaluate.catalogue import (
    CatalogueError,
    catalogue_rows,
    load_builtin_catalogue,
    load_catalogue,
    parse_catalogue,
    read_catalogue_files,
)

DATA = read_catalogue_files()
V6 = "sql/catalogue/frameworks/cis_v6.0.0.yaml"
MFA = "sql/catalogue/controls/root_mfa.yaml"


def _load(edit) -> str:
    data = copy.deepcopy(DATA)
    edit(data)
    with pytest.raises(CatalogueError) as raised:
        parse_catalogue(data)
    return str(raised.value)


def _control(data, check_id):
    return next(c for c in data["frameworks"][V6]["controls"] if c["id"] == check_id)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: _control(d, "2.4").update(titel="x"), [V6, "controls[", "unknown key 'titel'"]),
        (lambda d: _control(d, "2.4").pop("assessment"), [V6, "missing key 'assessment'"]),
        (lambda d: _control(d, "2.4").update(assessment="scored"), [V6, "control 2.4", "assessment"]),
        (lambda d: _control(d, "2.4").update(logic="root_mfaa"), [V6, "control 2.4", "root_mfaa",
                                                                  "no control file"]),
        (lambda d: _control(d, "2.1").update(assessment="automated"), [V6, "control 2.1", "manual"]),
        (lambda d: _control(d, "2.3").update(id="2.4"), [V6, "control 2.4", "defined twice"]),
        (lambda d: d["frameworks"][V6].update(framework="cis_v6.0.1"), [V6, "differs from the file name"]),
        (lambda d: d["controls"][MFA].update(severity="urgent"), [MFA, "severity", "urgent"]),
        (lambda d: d["controls"][MFA].pop("needs"), [MFA, "missing key 'needs'"]),
        (lambda d: d["controls"][MFA].update(needs=[]), [MFA, "needs"]),
        (lambda d: d["controls"][MFA].update(remedy="x"), [MFA, "unknown key 'remedy'"]),
        (lambda d: d["controls"].update({"sql/catalogue/controls/orphan.yaml": d["controls"][MFA]}),
         ["orphan.yaml", "no framework file"]),
    ],
)
def test_a_malformed_file_is_a_load_error_naming_file_and_key(edit, words):
    message = _load(edit)
    for word in words:
        assert word in message, message


def test_invalid_yaml_names_the_file(tmp_path):
    for kind in ("frameworks", "controls"):
        (tmp_path / kind).mkdir()
    (tmp_path / "frameworks" / "cis_v9.0.0.yaml").write_text("framework: cis_v9.0.0\ncontrols: [\n")
    with pytest.raises(CatalogueError, match=r"cis_v9\.0\.0\.yaml: not valid YAML"):
        read_catalogue_files(tmp_path)


# sha256 of the aws_policy_controls rows as shipped before the catalogue was split into files
# (src/iam_audit/sql/catalogue.yaml; the split was verified equal row by row): the nine CIS versions already
# published, and iam_hygiene IH.1-IH.10, stay exactly as they are; a deliberate change updates it here.
SHIPPED = {
    "cis_v1.2.0-v6.0.0": "d964dff656f122de97f6d84a790a7d206ea83d4caa7aaf06fb999ba154dc70d5",
    "iam_hygiene IH.1-IH.10": "a1f075c8a4ed4134ea3b4dfeb6c64ea2ab1be056aefb20aaa377634bbf585718",
}


def _digest(rows) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def test_earlier_versions_keep_their_exact_mapping():
    rows = catalogue_rows(load_catalogue())
    assert _digest([r for r in rows if r[0].startswith("cis_") and r[0] != "cis_v7.0.0"]) == \
        SHIPPED["cis_v1.2.0-v6.0.0"]
    hygiene = [r for r in rows if r[0] == "iam_hygiene" and int(r[1].removeprefix("IH.")) <= 10]
    assert _digest(hygiene) == SHIPPED["iam_hygiene IH.1-IH.10"]


def test_a_new_version_is_scaffolded_from_the_previous_one(tmp_path):
    import shutil

    from iam_audit.evaluate.catalogue import main, scaffold_version
    from iam_audit.paths import CATALOGUE_DIR

    shutil.copytree(CATALOGUE_DIR, tmp_path / "catalogue")
    target = scaffold_version("cis_v8.0.0", "cis_v6.0.0", tmp_path / "catalogue")
    assert target.read_text().count("framework: cis_v8.0.0\n") == 1
    copied = load_builtin_catalogue.__wrapped__(tmp_path / "catalogue")
    old = [(c.check_id, c.logic, c.title, c.params) for c in copied.all_controls() if c.framework == "cis_v6.0.0"]
    new = [(c.check_id, c.logic, c.title, c.params) for c in copied.all_controls() if c.framework == "cis_v8.0.0"]
    assert new == old
    with pytest.raises(CatalogueError, match="already exists"):
        scaffold_version("cis_v8.0.0", "cis_v6.0.0", tmp_path / "catalogue")
    with pytest.raises(CatalogueError, match="no such framework file"):
        scaffold_version("cis_v9.0.0", "cis_v0.1.0", tmp_path / "catalogue")
    assert main(["new", "cis_v8.0.0", "--from", "cis_v0.1.0"]) == 1  # an unknown source: an error, no file
