"""Continuous AWS IAM compliance: extraction, loading and CIS checks for the aws_iam_cis DAG."""
