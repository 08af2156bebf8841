"""Data lineage of a run, for OpenLineage: which datasets each task reads and writes.

With apache-airflow-providers-openlineage installed and a transport configured, the provider emits
an event per task; these datasets are its inputs and outputs:

    extract_account   -> s3://<bucket>/<prefix>/<data set>            (one per data set, all accounts)
    load_staging      s3 data sets -> postgres .../<db>/iam_stage/<table>
    check_<logic>     the staging tables of its data sets -> the verdict history and aws_policy_results
    summarize, publish_report, export_ocsf, build_evidence_pack
                      aws_policy_results -> the report, the OCSF export, the evidence pack in S3

Dataset names stay the same from run to run (the snapshot date and the account are partitions of a
dataset, not datasets), so a lineage tool draws one graph. PostgreSQL datasets follow OpenLineage's
naming (namespace postgres://host:port, name database.schema.table); a connection over a Unix socket
(host is a directory) is named localhost.

TaskFlow tasks report through Airflow's hook lineage collector, the check operators through their
own OpenLineage method. Without the provider the collector is Airflow's no-op one: nothing changes.
Lineage never fails a task: a dataset that cannot be named is logged and left out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

# The history tables every check writes through sql/macros/check.sql, and the contract's view of them.
VERDICT_TABLES = ("aws_policy_verdicts", "aws_policy_evaluations", "aws_policy_scopes", "aws_policy_results")
RESULTS = "aws_policy_results"


def staging_tables(datasets: Iterable[str]) -> list[str]:
    """The iam_stage tables the given raw data sets fill (and the two every load writes)."""
    from iam_audit.ingest.datasets import DATASET_TABLES

    tables = ["accounts", "extraction_status"]
    for dataset in datasets:
        tables += [t for t in DATASET_TABLES.get(dataset, ()) if t not in tables]
    return tables


def all_datasets() -> list[str]:
    from iam_audit.ingest.datasets import NAMES

    return list(NAMES)


def postgres_base(postgres_conn_id: str) -> str:
    """postgres://host:port/database of the connection (one connection lookup)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(postgres_conn_id)
    host = conn.host or "localhost"
    if host.startswith("/"):       # a Unix socket directory
        host = "localhost"
    return f"postgres://{host}:{conn.port or 5432}/{conn.schema or 'postgres'}"


def postgres_uri(postgres_conn_id: str, schema: str, table: str) -> str:
    """postgres://host:port/database/schema/table for a table of the connection's database."""
    return f"{postgres_base(postgres_conn_id)}/{schema}/{table}"


def postgres_uris(postgres_conn_id: str, schema: str, tables: Iterable[str]) -> list[str]:
    """The URIs of several tables of one schema, for one connection lookup."""
    base = postgres_base(postgres_conn_id)
    return [f"{base}/{schema}/{table}" for table in tables]


def s3_uri(bucket: str, prefix: str, name: str) -> str:
    return f"s3://{bucket}/{prefix}/{name}"


Uris = Iterable[str] | Callable[[], Iterable[str]]


def report(context, inputs: Uris = (), outputs: Uris = ()) -> None:
    """Hand the task's datasets (URIs) to Airflow's hook lineage collector; `context` is the hook or
    object doing the reading and writing. A no-op without a lineage reader (the OpenLineage provider):
    `inputs` and `outputs` may be callables, then the URIs (connection lookups) are made only when
    lineage is collected."""
    try:
        from airflow.sdk.lineage import NoOpCollector, get_hook_lineage_collector

        collector = get_hook_lineage_collector()
        if isinstance(collector, NoOpCollector):
            return
        inputs = inputs() if callable(inputs) else inputs
        outputs = outputs() if callable(outputs) else outputs
        for uri in inputs:
            collector.add_input_asset(context=context, uri=uri)
        for uri in outputs:
            collector.add_output_asset(context=context, uri=uri)
    except Exception as exc:  # noqa: BLE001 - lineage is informative, never a reason to fail a task
        log.warning("lineage not reported: %s", exc)


def check_lineage(postgres_conn_id: str, needs: Iterable[str]):
    """(inputs, outputs) as OpenLineage datasets of one check task: its staging tables -> the verdicts."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    authority, _, database = postgres_base(postgres_conn_id).removeprefix("postgres://").partition("/")

    def dataset(schema: str, table: str) -> Dataset:
        return Dataset(namespace=f"postgres://{authority}", name=f"{database}.{schema}.{table}")

    inputs = [dataset("iam_stage", t) for t in staging_tables(needs)]
    outputs = [dataset("public", t) for t in VERDICT_TABLES]
    return inputs, outputs
