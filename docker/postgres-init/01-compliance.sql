-- Runs once, when the postgres volume is first initialised: the database the DAG writes
-- its verdicts to (connection postgres_default), next to Airflow's metadata database.
CREATE DATABASE compliance OWNER airflow;
