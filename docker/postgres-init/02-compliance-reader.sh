#!/bin/sh
# Runs once, when the postgres volume is first initialised: the login of the Compliance
# page (connection compliance_reader of the API server). It is a member of the NOLOGIN
# role compliance_reader, which src/iam_audit/sql/views/900_compliance_reader.sql grants read access
# to the aws_policy_* views only; it can write nothing and sees no iam_stage table.
set -eu
psql -v ON_ERROR_STOP=1 -v password="$COMPLIANCE_READER_PASSWORD" --username "$POSTGRES_USER" --dbname compliance <<'SQL'
CREATE ROLE compliance_reader NOLOGIN;
CREATE ROLE compliance_page LOGIN PASSWORD :'password' IN ROLE compliance_reader CONNECTION LIMIT 10;
-- defaults of every login the project creates (tools/iam_audit_dev/devenv/postgres.py, LOGIN_LIMITS)
ALTER ROLE compliance_page SET statement_timeout = '2min';
ALTER ROLE compliance_page SET idle_in_transaction_session_timeout = '1min';
ALTER ROLE compliance_page SET lock_timeout = '10s';
SQL
