"""The Compliance page of the Airflow UI: registration (plugin), app and authorisation (app), query
parameters (params), statements and data (queries), HTML (render, templates/, static/)."""

DAG_ID = "aws_iam_cis"
URL_PREFIX = "/compliance"
