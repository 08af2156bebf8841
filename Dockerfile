# The project's Airflow image for docker-compose.yaml: the official image plus this
# project's pinned dependencies. DAGs, plugins, include/ and sql/ are mounted, not copied.
FROM apache/airflow:3.3.2-python3.11

# requirements.txt is the project's full lock (pip freeze of a working venv). Airflow
# itself stays exactly as the image ships it: the three core distributions are left out
# of the install and `apache-airflow==${AIRFLOW_VERSION}` is named in the same pip
# command, so pip can neither upgrade nor downgrade it while installing the providers and
# libraries at the versions the project is tested with. pgserver (the embedded database
# of `make demo`) is not needed here: PostgreSQL is a service of the compose file.
COPY requirements.txt /tmp/requirements.txt
RUN grep -vE '^(apache-airflow|apache-airflow-core|apache-airflow-task-sdk|pgserver)==' /tmp/requirements.txt \
        > /tmp/requirements-image.txt \
    && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/requirements-image.txt \
    && rm /tmp/requirements.txt /tmp/requirements-image.txt

ENV PYTHONPATH=/opt/airflow/include
