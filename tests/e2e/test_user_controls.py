"""A user's own controls in a real DAG run (Variable iam_audit_custom_path, here from the environment):
the example folder's org_policy verdicts land in aws_policy_results, the views, the Compliance page and
the report; a custom check that breaks at run time fails its own task only, and every built-in verdict
equals that of a run without the folder.

Runs last among the whole-DAG tests (file name), since its run leaves org_policy in the catalogue."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import PROJECT_ROOT, account_of
from tests.e2e.conftest import fetch_results

pytestmark = pytest.mark.e2e

EXAMPLE = PROJECT_ROOT / "examples" / "custom-controls"
BROKEN = "keys_of_a_missing_column"


def user_folder(tmp_path, account_id: str):
    """The example folder with OP.1 listing `account_id`, and a third control whose SQL parses (the DAG
    accepts it) but names a column staging does not have, so its task fails when it runs."""
    folder = tmp_path / "controls"
    shutil.copytree(EXAMPLE, folder)
    framework = folder / "catalogue" / "frameworks" / "org_policy.yaml"
    text = framework.read_text().replace("['111111111111', '222222222222']", f"['{account_id}']")
    framework.write_text(text + f"  - {{id: OP.3, logic: {BROKEN}, title: Broken at run time, level: null, "
                                f"assessment: automated, params: {{accounts: ['{account_id}']}}}}\n")
    source = "no_user_keys_in_listed_accounts"
    controls = folder / "catalogue" / "controls"
    shutil.copy(controls / f"{source}.yaml", controls / f"{BROKEN}.yaml")
    sql = (folder / "checks" / f"{source}.sql").read_text().replace(source, BROKEN)
    (folder / "checks" / f"{BROKEN}.sql").write_text(sql.replace("u.access_key_2_active IS FALSE THEN 'pass'",
                                                                 "u.access_key_9_active IS FALSE THEN 'pass'"))
    return folder


def test_custom_controls_run_beside_the_built_in_ones(e2e_stack, run, today, tmp_path, monkeypatch):
    emulator = e2e_stack.emulator
    weak = account_of(emulator.manifest, "weak")
    conf = {"accounts": [weak]}
    baseline = run(today, conf=conf)   # the built-in DAG, no custom folder
    assert baseline.state == "success", (baseline.failed_tasks, baseline.log_file)
    before = {k: v for k, v in fetch_results(e2e_stack, today).items() if k[2] == weak}

    organizations = e2e_stack.boto3_client("organizations")
    organizations.tag_resource(ResourceId=weak, Tags=[{"Key": "environment", "Value": "production"}])
    folder = user_folder(tmp_path, weak)
    try:
        # the folder is read when the DAG is parsed: every run of the shared DAG server parses again
        result = run(today, conf=conf, IAM_AUDIT_CUSTOM_PATH=str(folder))
    finally:
        organizations.untag_resource(ResourceId=weak, TagKeys=["environment"])
    assert result.state == "failed"
    assert set(result.failed_tasks) == {f"check_{BROKEN}", "fail_run_on_task_failure"}, result.log_file

    after = {k: v for k, v in fetch_results(e2e_stack, today).items() if k[2] == weak}
    assert {k: v for k, v in after.items() if k[0] != "org_policy"} == before   # built-in verdicts untouched
    custom = {(c, r): s for (f, c, _, r), (s, _) in after.items() if f == "org_policy"}
    assert custom and {c for c, _ in custom} == {"OP.1", "OP.2"}   # OP.3 broke: no verdict
    arn = f"arn:aws:iam::{weak}:user/"
    keyed = {r.removeprefix(arn) for (c, r), s in custom.items() if c == "OP.1" and s == "fail"}
    assert keyed, "the weak account's users with active keys fail OP.1"
    assert "fail" in {s for (c, _), s in custom.items() if c == "OP.2"}, "the weak account has console admins " \
                                                                         "without MFA, and is tagged production"
    with e2e_stack.postgres.connect(e2e_stack.database) as conn:
        scores = conn.execute("SELECT sum(fail_count) FROM aws_policy_framework_scores WHERE framework = 'org_policy' "
                              "AND snapshot_date = %s", (today,)).fetchone()[0]
        assert scores == sum(1 for s in custom.values() if s == "fail")
        report_key = f"iam/snapshot_date={today}/report.html"
    html = e2e_stack.boto3_client("s3").get_object(Bucket=e2e_stack.bucket, Key=report_key)["Body"].read().decode()
    assert "org_policy" in html and "OP.2" in html

    from iam_audit.web import queries, render

    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", e2e_stack.env["AIRFLOW_CONN_POSTGRES_DEFAULT"])
    monkeypatch.setenv(queries.ALLOW_WRITER_ENV, "true")
    page = queries.load_compliance(params={"framework": "org_policy"})
    assert "org_policy" in page["catalogue_frameworks"] and "OP.2" in render.render_page(page)
