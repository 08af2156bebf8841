"""A user's own controls (iam_audit.custom): the example folder validates and its fixtures pass on a real
PostgreSQL; each bad input is refused with its file and line while the other controls stay; the DAG
schedules accepted custom checks and shows refusals as a failing task."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from iam_audit.custom import load_custom
from iam_audit.custom.__main__ import validate
from tests.conftest import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "examples" / "custom-controls"
KEYS, ADMIN = "no_user_keys_in_listed_accounts", "console_admin_without_mfa_in_production"


@pytest.fixture()
def folder(tmp_path):
    target = tmp_path / "controls"
    shutil.copytree(EXAMPLE, target)
    return target


def line_of(path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_example_folder_validates_and_its_fixtures_pass(postgres):
    out = io.StringIO()
    assert validate(str(EXAMPLE), postgres.conninfo(), out=out) == 0, out.getvalue()
    report = out.getvalue()
    assert report.count("ok   ") == 5 and report.rstrip().endswith("valid")
    controls = load_custom(str(EXAMPLE))
    assert controls.logics == (ADMIN, KEYS) and controls.refused == ()
    assert "org_policy" in controls.catalogue.frameworks
    assert {c.check_id for c in controls.catalogue.all_controls() if c.framework == "org_policy"} == {"OP.1", "OP.2"}


def test_a_wrong_expectation_fails_validation(folder, postgres):
    fixture = folder / "fixtures" / f"{ADMIN}.yaml"
    fixture.write_text(fixture.read_text().replace("user/admin-mfa: pass", "user/admin-mfa: fail"))
    out = io.StringIO()
    assert validate(str(folder), postgres.conninfo(), out=out) == 1
    assert f"{fixture}:3: case 'an administrator without MFA fails in production only'" in out.getvalue()
    assert "admin-mfa: expected fail, got ['pass']" in out.getvalue()


def test_sql_that_postgres_cannot_plan_is_refused_with_its_line(folder, postgres):
    sql = folder / "checks" / f"{KEYS}.sql"
    sql.write_text(sql.read_text().replace("u.access_key_2_active IS FALSE THEN 'pass'",
                                           "u.access_key_3_active IS FALSE THEN 'pass'"))
    out = io.StringIO()
    assert validate(str(folder), postgres.conninfo(), out=out) == 1
    assert f"{sql}:{line_of(sql, 'access_key_3_active')}: PostgreSQL: column u.access_key_3_active does not exist" \
        in out.getvalue()


def _refusals(folder) -> dict[str, str]:
    controls = load_custom(str(folder))
    return {f"{r.file}:{r.line}": r.message for r in controls.refused}, controls


def test_sql_that_does_not_parse(folder):
    sql = folder / "checks" / f"{KEYS}.sql"
    sql.write_text(sql.read_text().replace("CROSS JOIN ready_accounts r", "CROSS JOIN JOIN ready_accounts r"))
    refused, controls = _refusals(folder)
    assert refused.pop(f"{sql}:{line_of(sql, 'CROSS JOIN JOIN')}") == \
        'SQL does not parse: syntax error at or near "ready_accounts"'
    framework = folder / "catalogue" / "frameworks" / "org_policy.yaml"
    assert refused == {f"{framework}:{line_of(framework, 'id: OP.1')}":
                       f"control OP.1: logic '{KEYS}' was refused (see its own message)"}
    assert controls.logics == (ADMIN,)   # the other control stays, and every built-in one
    assert "check_root_mfa" not in refused and len(controls.catalogue.checks) > 30


def test_unknown_data_set_in_needs(folder):
    yaml_file = folder / "catalogue" / "controls" / f"{KEYS}.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("needs: [credential_report]", "needs: [credential_reports]"))
    refused, controls = _refusals(folder)
    (where, message), = ((w, m) for w, m in refused.items() if w.startswith(str(yaml_file)))
    assert where == f"{yaml_file}:2" and message.startswith("needs: unknown data set 'credential_reports'")
    assert KEYS not in controls.logics
    # its framework entry is left out too, with the reason
    controls_of_op = [c.check_id for c in controls.catalogue.all_controls() if c.framework == "org_policy"]
    assert controls_of_op == ["OP.2"]


def test_a_logic_named_like_a_built_in_one(folder):
    for kind, ext in (("checks", "sql"), ("catalogue/controls", "yaml")):
        (folder / kind / f"{KEYS}.{ext}").rename(folder / kind / f"root_mfa.{ext}")
    framework = folder / "catalogue" / "frameworks" / "org_policy.yaml"
    framework.write_text(framework.read_text().replace(f"logic: {KEYS}", "logic: root_mfa"))
    refused, _ = _refusals(folder)
    entry = folder / "catalogue" / "controls" / "root_mfa.yaml"
    assert refused[f"{entry}:1"].startswith("logic 'root_mfa' duplicates a built-in logic")


@pytest.mark.parametrize("change, expected", [
    # a statement after the macro call: it would run outside the verdict transaction
    (lambda s: s + "DELETE FROM aws_policy_results;\n", "SQL outside the check macro"),  # noqa: S608
    # a data-modifying CTE inside the body
    (lambda s: s.replace("FROM controls c\n", "FROM controls c\nCROSS JOIN (WITH gone AS (DELETE FROM "
                                              "iam_stage.accounts RETURNING 1) SELECT 1 FROM gone) AS x\n"),
     "the check body contains DELETE"),
    # a second statement in the body
    (lambda s: s.replace("{% endcall %}", ";\nUPDATE iam_stage.accounts SET account_name = 'x'\n{% endcall %}"),
     "the check body must be one SELECT statement"),
    # the macro's own procedure, called by hand
    (lambda s: s.replace("FROM controls c\n", "FROM controls c\nCROSS JOIN aws_policy_finish_check(NULL, NULL, "
                                              "NULL, NULL) AS f\n"), "calls aws_policy_finish_check()"),
    # not written through the macro at all
    (lambda s: "INSERT INTO aws_policy_verdicts SELECT 1;\n", "SQL outside the check macro"),
])
def test_sql_that_writes_outside_the_macro(folder, change, expected):
    sql = folder / "checks" / f"{KEYS}.sql"
    sql.write_text(change(sql.read_text()))
    refused, controls = _refusals(folder)
    (where, message), = ((w, m) for w, m in refused.items() if w.startswith(str(sql)))
    assert where.startswith(f"{sql}:") and int(where.rsplit(":", 1)[1]) > 0 and expected in message, (where, message)
    assert controls.logics == (ADMIN,)


def test_params_that_do_not_meet_the_schema(folder):
    framework = folder / "catalogue" / "frameworks" / "org_policy.yaml"
    framework.write_text(framework.read_text().replace("'222222222222'", "'2222'"))
    refused, controls = _refusals(folder)
    assert refused.pop(f"{framework}:{line_of(framework, 'id: OP.1')}").startswith(
        "org_policy control OP.1 (no_user_keys_in_listed_accounts): params.accounts.1: '2222' does not match")
    # the logic, now mapped by no control, is left out as well
    assert list(refused.values()) == [f"no accepted control of a framework file in {folder}/catalogue/frameworks "
                                      f"maps to logic '{KEYS}', so it would never run"]
    assert controls.logics == (ADMIN,)


def test_yaml_that_does_not_parse(folder):
    yaml_file = folder / "catalogue" / "controls" / f"{ADMIN}.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("severity: critical", "severity: [critical"))
    refused, controls = _refusals(folder)
    where = next(w for w in refused if w.startswith(str(yaml_file)))
    assert refused[where].startswith("not valid YAML") and controls.logics == (KEYS,)


def test_the_dag_schedules_custom_checks_and_shows_refusals(folder):
    """The DAG as Airflow parses it, in a process of its own, with the folder from the environment."""
    sql = folder / "checks" / f"{KEYS}.sql"
    sql.write_text(sql.read_text().replace("CROSS JOIN ready_accounts r", "CROSS JOIN JOIN ready_accounts r"))
    script = ("import json; from iam_audit.dag import aws_iam_cis; d = aws_iam_cis(); "
              "t = d.get_task('custom_controls_refused')\n"
              "try:\n    t.python_callable(); failure = None\n"
              "except Exception as exc:\n    failure = [type(exc).__name__, str(exc)]\n"
              "print(json.dumps({'tasks': sorted(d.task_ids), 'doc': d.doc_md, 'frameworks': "
              "d.params['frameworks'], 'refused_doc': t.doc_md, 'failure': failure, 'retries': t.retries}))")
    env = {**os.environ, "IAM_AUDIT_CUSTOM_PATH": str(folder)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    dag = json.loads(done.stdout.strip().splitlines()[-1])
    where = f"{sql}:{line_of(sql, 'CROSS JOIN JOIN')}"
    assert f"custom control refused: {where}: SQL does not parse" in done.stdout + done.stderr  # parse log
    assert f"check_{ADMIN}" in dag["tasks"] and f"check_{KEYS}" not in dag["tasks"]
    assert "custom_controls_refused" in dag["tasks"] and where in dag["refused_doc"] and where in dag["doc"]
    assert "org_policy" in dag["frameworks"]
    # the task fails at once, with every refusal's file and line
    assert dag["failure"][0] == "AirflowFailException" and where in dag["failure"][1] and dag["retries"] == 0
    from iam_audit.evaluate.catalogue import load_builtin_catalogue

    assert {f"check_{c.logic}" for c in load_builtin_catalogue().checks} <= set(dag["tasks"])


def test_a_framework_of_ours_may_reuse_a_built_in_logic_with_its_own_params(folder, postgres, database):
    """org_policy may require 20 characters with the built-in password length check: the built-in task
    then also evaluates that variant, and its verdicts carry the custom framework's number."""
    from iam_audit.database import apply_schema, run_check
    from iam_audit.evaluate.fixtures import SNAPSHOT, Snapshot, statuses

    framework = folder / "catalogue" / "frameworks" / "org_policy.yaml"
    framework.write_text(framework.read_text() + "  - {id: OP.9, logic: password_policy_min_length, title: Twenty "
                                                 "characters, level: null, assessment: automated, "
                                                 "params: {min_length: 20}}\n")
    controls = load_custom(str(folder))
    assert controls.refused == ()
    check = controls.catalogue.check("password_policy_min_length")
    assert ("org_policy", "OP.9", {"min_length": 20}) in [(c.framework, c.check_id, c.params) for c in check.controls]
    conn = postgres.connect(database)
    try:
        apply_schema(conn, controls.catalogue)
        Snapshot(conn).account("111111111111").password_policy("111111111111", minimum_password_length=16).commit()
        run_check(conn, "password_policy_min_length", SNAPSHOT, frameworks=["cis_v7.0.0", "org_policy"])
        assert statuses(conn, "password_policy_min_length", "cis_v7.0.0") == {"111111111111": "pass"}
        assert statuses(conn, "password_policy_min_length", "org_policy") == {"111111111111": "fail"}
    finally:
        conn.close()
