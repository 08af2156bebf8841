#!/bin/sh
# Runs once, when the postgres volume is first initialised, as the superuser (whose password only
# the postgres container holds). The two databases are owned by roles that are not superusers:
# airflow (Airflow's metadata) and iam_audit (the compliance database: connection postgres_default).
# A superuser could mute every finding, rewrite history or run programs on the server (COPY ... TO
# PROGRAM); these owners can do neither outside their own database.
set -eu
psql -v ON_ERROR_STOP=1 -v airflow_password="$AIRFLOW_DB_PASSWORD" -v iam_audit_password="$IAM_AUDIT_DB_PASSWORD" \
     --username "$POSTGRES_USER" --dbname postgres <<'SQL'
CREATE ROLE airflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'airflow_password' CONNECTION LIMIT 200;
ALTER ROLE airflow SET idle_in_transaction_session_timeout = '10min';
CREATE ROLE iam_audit LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'iam_audit_password' CONNECTION LIMIT 50;
-- the pipeline sets its own statement and lock timeouts per session; these bound anything else
ALTER ROLE iam_audit SET statement_timeout = '30min';
ALTER ROLE iam_audit SET idle_in_transaction_session_timeout = '10min';
CREATE DATABASE airflow OWNER airflow;
-- the database the DAG writes its verdicts to, next to Airflow's metadata database
CREATE DATABASE compliance OWNER iam_audit;
REVOKE CREATE, TEMPORARY ON DATABASE compliance FROM PUBLIC;
SQL
