"""The operator of the check tasks: Airflow's SQLExecuteQueryOperator with the check's lineage."""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator


class CheckOperator(SQLExecuteQueryOperator):
    """One check_<logic> task. Runs exactly as SQLExecuteQueryOperator; for OpenLineage it names what
    the check reads and writes (iam_audit.export.lineage.check_lineage): the staging tables of the data sets
    it needs, and the verdict history. SQL parsing alone cannot tell, since every check writes through
    sql/macros/check.sql's temporary tables and a stored procedure."""

    def __init__(self, *, needs: Sequence[str] = (), **kwargs):
        super().__init__(**kwargs)
        self.needs = tuple(needs)

    def get_openlineage_facets_on_complete(self, task_instance):
        from airflow.providers.openlineage.extractors import OperatorLineage

        from iam_audit.export.lineage import check_lineage

        try:
            base = super().get_openlineage_facets_on_complete(task_instance)
        except Exception:  # noqa: BLE001 - the SQL facets are a bonus; the datasets below are the point
            base = None
        inputs, outputs = check_lineage(self.conn_id, self.needs)
        return OperatorLineage(inputs=inputs, outputs=outputs,
                               run_facets=getattr(base, "run_facets", {}) or {},
                               job_facets=getattr(base, "job_facets", {}) or {})
