"""One vocabulary: the severity order is defined once (iam_audit.vocabulary) and every other place that
needs it, in Python or SQL, uses it or agrees with it; framework labels and rate tones are the vocabulary's."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import iam_audit
from iam_audit import vocabulary
from iam_audit.paths import SQL_DIR
from iam_audit.vocabulary import SEVERITIES

SEVERITY_SET = set(SEVERITIES)


def runtime_modules():
    for info in pkgutil.walk_packages(iam_audit.__path__, "iam_audit."):
        yield importlib.import_module(info.name)


def test_python_modules_take_the_severity_order_from_the_vocabulary():
    """A sequence of the four severities in most-severe-first order is the vocabulary's own object (imported,
    not spelled again); any other sequence or rank mapping of them orders them as the vocabulary does."""
    seen = []
    for module in runtime_modules():
        for name, value in vars(module).items():
            if (isinstance(value, tuple | list) and all(isinstance(v, str) for v in value)
                    and set(value) == SEVERITY_SET and len(value) == len(SEVERITIES)):
                seen.append(f"{module.__name__}.{name}")
                if tuple(value) == SEVERITIES:
                    assert value is SEVERITIES, f"{module.__name__}.{name} spells the severity order again"
                else:
                    assert tuple(value) == tuple(reversed(SEVERITIES)), f"{module.__name__}.{name}: {value}"
            elif isinstance(value, dict) and set(value) == SEVERITY_SET and all(
                    isinstance(v, int) for v in value.values()):
                seen.append(f"{module.__name__}.{name}")
                ranks = [value[s] for s in SEVERITIES]
                assert ranks in (sorted(ranks), sorted(ranks, reverse=True)) and len(set(ranks)) == len(ranks), \
                    f"{module.__name__}.{name} orders the severities otherwise: {value}"
    # the places that need the order were found (the check is not vacuous)
    assert {"iam_audit.evaluate.catalogue.SEVERITIES", "iam_audit.reporting.report.SEVERITY_ORDER",
            "iam_audit.web.params.SEVERITIES", "iam_audit.alerting.alerts.SEVERITIES"} <= set(seen), seen


CASE = re.compile(r"CASE\s+[\w.]+\s+((?:WHEN\s+'\w+'\s+THEN\s+\d+\s+)+)ELSE\s+(\d+)\s+END", re.I)
WHEN = re.compile(r"WHEN\s+'(\w+)'\s+THEN\s+(\d+)", re.I)
ARRAY = re.compile(r"ARRAY\[((?:\s*'\w+'\s*,?)+)\]", re.I)


def sql_orders() -> list[tuple[str, list[str]]]:
    """(file, severities in the order of their rank) for every severity CASE and ARRAY literal in the SQL."""
    found = []
    for path in sorted(SQL_DIR.rglob("*.sql")):
        text = path.read_text()
        for case in CASE.finditer(text):
            pairs = [(name, int(rank)) for name, rank in WHEN.findall(case.group(1))]
            if {n for n, _ in pairs} & SEVERITY_SET:
                else_rank = int(case.group(2))
                ranks = dict(pairs)
                # a severity left to ELSE (low, usually) takes the ELSE rank
                order = sorted(SEVERITIES, key=lambda s: ranks.get(s, else_rank))
                assert len({ranks.get(s, else_rank) for s in SEVERITIES}) >= len(SEVERITIES) - 1, (path, case[0])
                found.append((f"{path.relative_to(SQL_DIR)}: {case[0][:60]}", order))
        for array in ARRAY.finditer(text):
            names = re.findall(r"'(\w+)'", array.group(1))
            if set(names) == SEVERITY_SET:
                found.append((f"{path.relative_to(SQL_DIR)}: {array[0]}", names))
    return found


def test_sql_ranks_severities_in_the_vocabularys_order():
    orders = sql_orders()
    assert len(orders) >= 4, orders  # the findings view and the alert rules spell it out
    for where, order in orders:
        assert tuple(order) in (SEVERITIES, tuple(reversed(SEVERITIES))), where


def test_statements_that_need_the_order_get_it_generated():
    from iam_audit.evaluate import day_verdicts
    from iam_audit.web.queries import QUERIES

    assert vocabulary.severity_rank_sql("severity") in QUERIES["findings"]
    assert "{severity_rank}" in (SQL_DIR / "web" / "findings.sql").read_text()
    assert day_verdicts.SEVERITY_RANK_SQL.format("s") == vocabulary.severity_rank_sql("s", unknown=3)


@pytest.mark.parametrize(("framework", "label"), [
    ("cis_v7.0.0", "CIS v7.0.0"), ("cis_v1.2.0", "CIS v1.2.0"), ("iam_hygiene", "iam_hygiene"),
    ("acme_baseline_v2", "acme_baseline v2"), ("acme_vault", "acme_vault"), ("custom", "custom"),
])
def test_framework_labels(framework, label):
    assert vocabulary.framework_label(framework) == label


def test_framework_numbers_name_each_family_once():
    assert vocabulary.framework_numbers([("cis_v3.0.0", "1.10"), ("iam_hygiene", "IH.2"), ("cis_v1.2.0", "1.2")]) \
        == "CIS v1.2.0 1.2 · v3.0.0 1.10 · iam_hygiene IH.2"


def test_rate_tones_and_pass_rate():
    assert [vocabulary.rate_tone(p) for p in (None, 0, 49.9, 50, 79.9, 80, 100)] == \
        ["", "bad", "bad", "warn", "warn", "good", "good"]
    assert vocabulary.pass_rate(8, 1) == 88.9 and vocabulary.pass_rate(0, 0) is None
    assert vocabulary.pass_ratio(3, 1) == 0.75
    assert [vocabulary.severity_of_rank(r) for r in range(5)] == [*SEVERITIES, "unknown"]
