"""example_bi_refresh: refresh a BI extract whenever aws_iam_cis has written new verdicts.

An example of consuming the aws_policy_results Asset; copy and adapt it.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import Asset, dag

POSTGRES_CONN_ID = "postgres_default"
# The Asset that aws_iam_cis's summarize task emits (same name and URI).
RESULTS_ASSET = Asset(name="aws_policy_results", uri="iam-audit://postgres_default/public/aws_policy_results")

# One row per snapshot x framework x account, by effective status (see docs/data-dictionary.md).
CREATE_EXTRACT = """
CREATE MATERIALIZED VIEW IF NOT EXISTS bi_compliance_daily AS
SELECT s.snapshot_date, s.framework, s.account_id,
       sum(s.pass_count)::bigint AS pass_count,
       sum(s.fail_count)::bigint AS fail_count,
       sum(s.error_count)::bigint AS error_count,
       sum(s.muted_count)::bigint AS muted_count,
       count(*) FILTER (WHERE s.fail_count > 0) AS failing_controls,
       count(*) AS evaluated_controls,
       round(sum(s.pass_count)::numeric / nullif(sum(s.pass_count) + sum(s.fail_count), 0), 4) AS pass_rate
FROM aws_policy_scores s
GROUP BY s.snapshot_date, s.framework, s.account_id
WITH DATA
"""
UNIQUE_INDEX = """
CREATE UNIQUE INDEX IF NOT EXISTS bi_compliance_daily_key
    ON bi_compliance_daily (snapshot_date, framework, account_id)
"""
# CONCURRENTLY: dashboards keep reading the previous contents while it refreshes.
REFRESH = "REFRESH MATERIALIZED VIEW CONCURRENTLY bi_compliance_daily"
GRANT_READER = """
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'compliance_reader') THEN
        GRANT SELECT ON bi_compliance_daily TO compliance_reader;
    END IF;
END
$$
"""
REFRESH_SQL = [CREATE_EXTRACT, UNIQUE_INDEX, REFRESH, GRANT_READER]

DOC = """
### Refresh the BI extract `bi_compliance_daily`

Runs each time **aws_iam_cis** updates the `aws_policy_results` Asset (its
`summarize` task), and (re)builds the materialized view `bi_compliance_daily`
in the compliance database: one row per `snapshot_date` × `framework` ×
`account_id` with `pass_count`, `fail_count`, `error_count`, `muted_count`,
`failing_controls`, `evaluated_controls` and `pass_rate` (pass / (pass + fail),
NULL when neither). The refresh is `CONCURRENTLY`: dashboards are never blocked.

**Pointing a BI tool at it** (Superset, Metabase, Grafana, Power BI, Tableau, ...):

1. Create a login for the tool and give it the read-only role:
   `CREATE ROLE bi_dashboard LOGIN PASSWORD '...' IN ROLE compliance_reader;`
   (`compliance_reader` reads results, controls, exceptions and every view;
   it cannot write and cannot see the raw IAM data in `iam_stage`).
2. Add a PostgreSQL data source with that login, the database of the
   `postgres_default` connection and schema `public`.
3. Build tiles on `bi_compliance_daily` (fast: pre-aggregated) and drill down with
   the views `aws_policy_open_findings`, `aws_policy_changes`, `aws_policy_latest`.
   Aggregate by summing counts; never average `pass_rate`.

See `docs/data-dictionary.md` for every column and example queries.
"""


@dag(
    dag_id="example_bi_refresh",
    schedule=[RESULTS_ASSET],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["example"],
    doc_md=DOC,
    description="Example consumer of the aws_policy_results Asset: refresh a BI extract",
    default_args={"owner": "security-data", "retries": 1},
)
def example_bi_refresh():
    SQLExecuteQueryOperator(
        task_id="refresh_bi_compliance_daily",
        conn_id=POSTGRES_CONN_ID,
        sql=REFRESH_SQL,
        autocommit=True,
        show_return_value_in_logs=False,
        doc_md="Create `bi_compliance_daily` if missing, then refresh it concurrently.",
    )


example_bi_refresh()
