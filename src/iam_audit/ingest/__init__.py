"""ingest: a run's accounts into the staging tables, in the order a run goes.

discover (which accounts) -> extract_accounts (per account: extract reads its data sets through the assumed
role, snapshot writes them to raw_store, manifest last) -> staging (per date: load reads, checks and
transforms each snapshot into iam_stage). The Airflow side of each step is in iam_audit.tasks.
"""
