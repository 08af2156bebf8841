"""An existing database of the earlier design (aws_policy_results a table, filled by the earlier
check macro, with the earlier views on it) upgrades in place on the next apply_schema."""

from iam_audit.database import apply_schema

from .history import HERE, VIEWS, create_legacy_table, rows, run_legacy, view_rows
from .test_equivalence import DAYS, stage_history

EARLIER_SCHEMA = """
-- a database of the earlier design has no record of an applied schema fingerprint or migration
DROP TABLE IF EXISTS iam_audit_schema_state, iam_audit_schema_migrations;
DROP VIEW IF EXISTS aws_policy_results CASCADE;
DROP TABLE aws_policy_verdicts, aws_policy_evaluations, aws_policy_scopes, aws_policy_variants CASCADE;
CREATE TABLE aws_policy_results (
    snapshot_date date NOT NULL, framework text NOT NULL, check_id text NOT NULL, title text NOT NULL,
    severity text NOT NULL, account_id text NOT NULL, resource_id text NOT NULL, resource_type text,
    status text NOT NULL CHECK (status IN ('pass', 'fail', 'error')), reason text NOT NULL, run_id text,
    evaluated_at timestamptz NOT NULL DEFAULT now(), control_logic text,
    CONSTRAINT aws_policy_results_key UNIQUE (snapshot_date, framework, check_id, account_id, resource_id));
CREATE INDEX aws_policy_results_status_idx ON aws_policy_results (snapshot_date, status);
CREATE INDEX aws_policy_results_history_idx
    ON aws_policy_results (framework, check_id, account_id, resource_id, snapshot_date);
CREATE INDEX aws_policy_results_account_date_idx ON aws_policy_results (account_id, snapshot_date);
CREATE INDEX aws_policy_results_fail_history_idx
    ON aws_policy_results (framework, check_id, account_id, resource_id, snapshot_date) WHERE status = 'fail';
"""


def test_a_database_of_the_earlier_design_upgrades_in_place(db):
    create_legacy_table(db)
    stage_history(db)
    for day in DAYS:
        run_legacy(db, day, f"run-{day}")
    # the earlier design: its table holds exactly what its macro wrote, its views read it
    db.execute(EARLIER_SCHEMA)
    db.execute("INSERT INTO aws_policy_results SELECT * FROM legacy_results")
    earlier_views = (HERE / "legacy_views.sql").read_text().replace(
        "VIEW legacy_", "VIEW aws_policy_").replace("legacy_results_effective", "aws_policy_results_effective"
                                                     ).replace("FROM legacy_results", "FROM aws_policy_results")
    db.execute(earlier_views)
    db.commit()
    before = {view: view_rows(db, view, "aws_policy_") for view in VIEWS}
    assert db.execute("SELECT relkind FROM pg_class WHERE relname = 'aws_policy_results'").fetchone()[0] == "r"

    apply_schema(db)
    assert db.execute("SELECT relkind FROM pg_class WHERE relname = 'aws_policy_results'").fetchone()[0] == "v"
    # every verdict is there, date by date, with its run; the old table is gone once they agree
    for day in DAYS:
        assert rows(db, "aws_policy_results", day) == rows(db, "legacy_results", day)
    assert db.execute("SELECT to_regclass('aws_policy_results_legacy')").fetchone()[0] is None
    assert {view: view_rows(db, view, "aws_policy_") for view in VIEWS} == before

    # idempotent: the next run's apply changes nothing
    stored = db.execute("SELECT count(*), sum(hashtext(i::text)) FROM aws_policy_verdicts i").fetchone()
    apply_schema(db)
    assert db.execute("SELECT count(*), sum(hashtext(i::text)) FROM aws_policy_verdicts i").fetchone() == stored
    for day in DAYS:
        assert rows(db, "aws_policy_results", day) == rows(db, "legacy_results", day)
