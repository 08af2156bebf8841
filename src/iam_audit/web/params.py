"""The page's query parameters: filters of the findings and accounts, and which page of accounts.

Anything else, or a bad value, is a FilterError naming the parameter (a 400 with its message)."""

import re
from typing import Any

from iam_audit.vocabulary import SEVERITIES

# the filters (their SQL fragments: iam_audit.web.queries.FINDING_FILTERS), in the order the 400 names them
FILTER_NAMES = ("account", "severity", "framework")
# the accounts table: one page of accounts (query parameters page, page_size, sort)
PAGING_DEFAULTS = {"page": 1, "page_size": 50, "sort": "pass_rate"}
MAX_PAGE_SIZE = 500
MAX_PAGE = 1_000_000
SORT_LABELS = {"pass_rate": "lowest pass rate first", "fail": "most failing first",
               "stale": "stale first, oldest snapshot first", "account": "by account id"}
SORTS = tuple(SORT_LABELS)
ACCOUNT_ID = re.compile(r"\d{12}")


class FilterError(ValueError):
    """A query parameter of the page that is not a known framework, account id or severity."""


def parse_filters(params: dict[str, str], frameworks: list[str]) -> dict[str, str]:
    """The filters of a request (findings and accounts), validated; empty values mean no filter."""
    wanted = {k: (params.get(k) or "").strip() for k in FILTER_NAMES}
    unknown = sorted(set(params) - set(FILTER_NAMES) - set(PAGING_DEFAULTS))
    if unknown:
        known = ", ".join([*FILTER_NAMES, *PAGING_DEFAULTS])
        raise FilterError(f"unknown query parameter {unknown[0]!r}: use {known}")
    if wanted["framework"] and wanted["framework"] not in frameworks:
        raise FilterError(f"framework {wanted['framework']!r} is not in the catalogue: one of {', '.join(frameworks)}")
    if wanted["account"] and not ACCOUNT_ID.fullmatch(wanted["account"]):
        raise FilterError(f"account {wanted['account']!r} is not a 12-digit AWS account id")
    if wanted["severity"] and wanted["severity"] not in SEVERITIES:
        raise FilterError(f"severity {wanted['severity']!r} is not one of {', '.join(SEVERITIES)}")
    return {k: v for k, v in wanted.items() if v}


def parse_paging(params: dict[str, str]) -> dict[str, Any]:
    """Which page of the accounts a request wants (page, page_size, sort), validated; empty means the default."""
    wanted = {k: (params.get(k) or "").strip() or str(d) for k, d in PAGING_DEFAULTS.items()}
    paging: dict[str, Any] = {"sort": wanted["sort"]}
    for name, most in (("page", MAX_PAGE), ("page_size", MAX_PAGE_SIZE)):
        value = wanted[name]
        if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= most:
            raise FilterError(f"{name} {value!r} is not a whole number from 1 to {most:,}")
        paging[name] = int(value)
    if paging["sort"] not in SORTS:
        raise FilterError(f"sort {paging['sort']!r} is not one of {', '.join(SORTS)}")
    return paging
