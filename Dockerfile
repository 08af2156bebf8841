# The project's images for docker-compose.yaml. The iam-audit package is installed from src/ as a
# user's Airflow installs it (its SQL is package data, its page an entry point); dags/ is mounted.
# .dockerignore keeps tests and local state out of the build context.
#
#   runtime   the official Airflow image plus what the pipeline runs with
#             (requirements-runtime.in, at the versions locked in requirements.txt)
#   emulator  runtime plus moto, for the stand-in AWS of the compose file only
FROM apache/airflow:3.3.2-python3.11 AS runtime

# requirements.txt is the project's full lock (pip freeze of the development venv, test
# tools included); here it only constrains versions, so nothing outside
# requirements-runtime.in and its dependencies is installed. `apache-airflow==${AIRFLOW_VERSION}`
# in the same pip command keeps Airflow exactly as the image ships it.
COPY requirements-runtime.in requirements.txt /tmp/
RUN grep -vE '^(pgserver)==' /tmp/requirements.txt > /tmp/constraints.txt \
    && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/requirements-runtime.in \
        -c /tmp/constraints.txt \
    && rm /tmp/requirements-runtime.in /tmp/requirements.txt /tmp/constraints.txt \
    && mkdir -p /opt/airflow/auth && chmod 0770 /opt/airflow/auth

COPY --chown=airflow:0 pyproject.toml /opt/iam-audit/
COPY --chown=airflow:0 src /opt/iam-audit/src
RUN pip install --no-cache-dir --no-deps /opt/iam-audit

FROM runtime AS emulator

COPY requirements.txt /tmp/requirements.txt
COPY --chown=airflow:0 tools /opt/iam-audit/tools
RUN pip install --no-cache-dir "moto[server]==5.2.5" -c /tmp/requirements.txt && rm /tmp/requirements.txt \
    && pip install --no-cache-dir --no-deps /opt/iam-audit/tools
