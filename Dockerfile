# The project's images for docker-compose.yaml. The iam-audit package is installed from src/ as a
# user's Airflow installs it (its SQL is package data, its page an entry point); dags/ is mounted.
# .dockerignore keeps tests and local state out of the build context.
#
#   runtime   the official Airflow image plus what the pipeline runs with
#             (requirements-runtime.txt: requirements-runtime.in locked with hashes)
#   emulator  runtime plus moto, for the stand-in AWS of the compose file only
FROM apache/airflow:3.3.2-python3.11 AS runtime

# requirements-runtime.txt locks requirements-runtime.in (at the versions of requirements.txt, the
# development lock) with a hash of every distribution: pip refuses anything that does not match.
# --no-deps: the lock is the whole closure (pip's resolver rejects hashed pins reached through extras).
# It pins apache-airflow at the version of the base image's tag, so Airflow stays as the image ships it.
COPY requirements-runtime.txt /tmp/
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements-runtime.txt \
    && rm /tmp/requirements-runtime.txt \
    && mkdir -p /opt/airflow/auth && chmod 0770 /opt/airflow/auth

COPY --chown=airflow:0 pyproject.toml /opt/iam-audit/
COPY --chown=airflow:0 src /opt/iam-audit/src
RUN pip install --no-cache-dir --no-deps /opt/iam-audit

FROM runtime AS emulator

COPY docker/requirements-emulator.txt /tmp/
COPY --chown=airflow:0 tools /opt/iam-audit/tools
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements-emulator.txt \
    && rm /tmp/requirements-emulator.txt \
    && pip install --no-cache-dir --no-deps /opt/iam-audit/tools
