"""The data-set registry (iam_audit.ingest.datasets) is what the rest is made of: the extractor,
transform and loader use its lists, the staging DDL has exactly its columns, and the audit role's
policy and CloudFormation role grant exactly its actions."""

from __future__ import annotations

import inspect

import pytest
from iam_audit_dev import policies

from iam_audit.ingest import datasets, extract, load, transform
from iam_audit.ingest.datasets import COLUMNS, DATASETS, NAMES
from iam_audit.paths import POLICIES_DIR
from tests.checks.staging import ALL_DATASETS


def test_every_reader_of_data_sets_uses_the_registry():
    assert extract.DATASETS == NAMES == ALL_DATASETS
    assert transform.COLUMNS == COLUMNS and transform.DATASET_TABLES == datasets.DATASET_TABLES
    assert load.STAGING_TABLES == ("accounts", "extraction_status", *COLUMNS)


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda d: d.name)
def test_each_data_set_has_a_collector_and_a_transform(dataset):
    assert dataset.name in extract.COLLECTORS
    function = getattr(transform, dataset.name)
    parameters = inspect.signature(function).parameters
    # the payloads it reads from other data sets are keyword parameters of its transform
    assert set(dataset.reads) <= set(parameters), (dataset.name, list(parameters))


def test_the_staging_ddl_has_the_registrys_columns(db):
    rows = db.execute("""SELECT table_name, array_agg(column_name::text ORDER BY ordinal_position)
                         FROM information_schema.columns WHERE table_schema = 'iam_stage'
                         GROUP BY table_name""").fetchall()
    ddl = dict(rows)
    for table, columns in COLUMNS.items():
        assert table in ddl, f"iam_stage.{table} is in the registry but no migration creates it"
        assert ddl[table][:2] == ["snapshot_date", "account_id"], table
        assert set(ddl[table][2:]) == set(columns), (
            f"iam_stage.{table}: the migrations' columns {sorted(set(ddl[table][2:]) ^ set(columns))} "
            "differ from the registry's")


def test_the_policy_files_are_written_from_the_registry():
    """Run `make policies` after changing a data set's actions."""
    assert (POLICIES_DIR / "audit-role-permissions.json").read_text() == policies.policy_json()
    template = policies.TEMPLATE_FILE.read_text()
    assert template == policies.template_text(template)
    actions = {a for s in datasets.audit_role_policy()["Statement"] for a in s["Action"]}
    assert actions == {a for d in DATASETS for a in d.actions}


def test_preflight_reads_every_data_set():
    from iam_audit.preflight import dataset_reads

    class Unused:
        def client(self, *args, **kwargs):
            raise AssertionError("no call is made while the reads are listed")

    reads = dataset_reads(None, Unused())
    assert [name for name in dict.fromkeys(name for name, _, _ in reads)] == list(NAMES)
    for name, action, _ in reads:
        assert action in datasets.BY_NAME[name].actions, (name, action)


def test_every_check_needs_known_data_sets():
    """A check's `needs` names data sets of the registry or the organisation's: a misspelt one would
    never be collected, so every account would get 'error' from the check."""
    from iam_audit.evaluate.catalogue import load_catalogue
    from iam_audit.ingest.organization import ORG_DATASETS

    known = set(NAMES) | set(ORG_DATASETS)
    for check in load_catalogue().checks:
        assert set(check.needs) <= known, (check.logic, sorted(set(check.needs) - known))
