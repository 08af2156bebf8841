"""Where the package's SQL, catalogue, policies and templates live: package data, found through
importlib.resources, so an installed wheel and a source checkout read the same files."""

from importlib.resources import files
from pathlib import Path

# The files are read with open() and handed to Airflow's template loader, which need a real folder:
# a wheel installed into site-packages (pip, MWAA's plugins.zip, Composer, an image) provides one.
PACKAGE_DIR = Path(str(files("iam_audit")))
SQL_DIR = PACKAGE_DIR / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
FUNCTIONS_DIR = SQL_DIR / "functions"
VIEWS_DIR = SQL_DIR / "views"
CHECKS_DIR = SQL_DIR / "checks"
CATALOGUE_DIR = SQL_DIR / "catalogue"
POLICIES_DIR = PACKAGE_DIR / "policies"
TEMPLATES_DIR = PACKAGE_DIR / "templates"
