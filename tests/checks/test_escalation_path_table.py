"""docs/escalation-paths.md is generated from docs/escalation-paths.yaml, and every method the
table calls detected is detected: its rule exists and its fixture fails IH.1 (the fixtures' own
test runs them)."""

import re

from iam_audit_dev.docs import ESCALATION_DOC, REGENERATE, load_escalation_paths, render_escalation_paths_markdown

from .test_hygiene_escalation_paths import PATHS

METHODS = load_escalation_paths()


def test_escalation_doc_is_up_to_date():
    actual = ESCALATION_DOC.read_text(encoding="utf-8") if ESCALATION_DOC.is_file() else ""
    expected = render_escalation_paths_markdown(METHODS)
    assert actual == expected, f"docs/escalation-paths.md is out of date: run `{REGENERATE}`"


def test_every_method_is_accounted_for():
    for m in METHODS:
        assert m["status"] in ("detected", "out of scope"), m
        assert m["references"], m
        if m["status"] == "detected":
            assert m.get("rule") and m.get("fixture") and m.get("controls"), m
            assert m["fixture"] in PATHS, f"{m['method']}: fixture {m['fixture']} is not in PATHS"
        else:
            assert m.get("reason"), f"{m['method']}: out of scope needs a reason"
    methods = [m["method"] for m in METHODS]
    assert len(methods) == len(set(methods))


def test_pathfinding_paths_are_each_listed_once():
    ids = [r.split()[-1] for m in METHODS for r in m["references"] if r.startswith("pathfinding.cloud ")]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z0-9]+-\d{3}", i) for i in ids)
    assert len(ids) >= 65  # the catalogue's AWS paths when this table was written


def test_rules_and_table_agree(db):
    rules = {r for (r,) in db.execute("SELECT rule FROM iam_audit_escalation_rules()")}
    cited = {m["rule"] for m in METHODS if m["status"] == "detected"}
    assert cited - rules == set(), "the table cites rules that do not exist"
    assert rules - cited == set(), "rules that no method of the table cites"


def test_every_fixture_is_cited():
    cited = {m["fixture"] for m in METHODS if m.get("fixture")}
    # the PassedToService, self-only and Deny variants are cited through their methods' notes
    extras = {"ec2-passrole-to-ec2", "lambda-passrole-to-lambda-wildcard", "iam-attach-own-user-policy",
              "iam-login-profile-named-user"}
    assert set(PATHS) - cited - extras == set()
