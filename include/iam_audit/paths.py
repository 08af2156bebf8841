"""Where the project's SQL and data files live, wherever the package is imported from."""

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("IAM_AUDIT_PROJECT_ROOT", Path(__file__).resolve().parents[2]))
SQL_DIR = PROJECT_ROOT / "sql"
SCHEMA_DIR = SQL_DIR / "schema"
VIEWS_DIR = SQL_DIR / "views"
CHECKS_DIR = SQL_DIR / "checks"
CATALOGUE_DIR = SQL_DIR / "catalogue"
