"""The check tests' staging helpers: the runtime package's fixture harness (iam_audit.evaluate.fixtures),
which `python -m iam_audit.custom validate` also uses for the fixtures of a user's own controls."""

from iam_audit.evaluate.fixtures import (  # noqa: F401 - names the tests import
    ALL_DATASETS,
    AS_OF,
    SNAPSHOT,
    Snapshot,
    day_of,
    days_ago,
    expected_role_statuses,
    statuses,
    verdicts,
)
