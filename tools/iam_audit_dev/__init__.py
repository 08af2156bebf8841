"""The project's development tools: the AWS emulator (moto with AWS's stricter behaviour modelled),
the bench stand-in, the embedded dev environment (make demo, make airflow, make run) and the docs
generator. Importable by the tests, the demo and the benchmarks; not part of the iam-audit wheel."""

import os
from pathlib import Path

# The source checkout these tools serve: its dags/, docs/ and .devenv/ state.
PROJECT_ROOT = Path(os.environ.get("IAM_AUDIT_PROJECT_ROOT", Path(__file__).resolve().parents[2]))
