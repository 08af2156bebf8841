"""aws_iam_cis: the daily CIS AWS Foundations audit of every account's IAM, as an Airflow DAG.

The flow is declared in the iam-audit package (iam_audit/dag.py: discover, extract, load, checks,
summary, alerts, exports; every task's body is in iam_audit/tasks.py, which calls the stages), so
upgrading the package upgrades the DAG with its SQL. This file only puts the DAG in Airflow's dags
folder: copy it into yours.
"""

from iam_audit.dag import aws_iam_cis

# Built here, at every parse of this file, rather than when the package is imported: a process that
# parses the dags folder again (a DAG processor, `airflow dags test`) then applies the settings read
# at parse time (retries, the custom controls' folder) instead of reusing the first parse's DAG.
aws_iam_cis_dag = aws_iam_cis()
