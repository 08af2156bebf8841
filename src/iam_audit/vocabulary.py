"""The words every reader of the verdicts shares: severities and their order, framework labels, the
headline unit and the pass rate, and the thresholds that colour a rate.

The Compliance page, the HTML report, the summary, the CLI, the catalogue and the day's verdicts
import these instead of spelling them out; SQL that needs the severity order gets it generated from
SEVERITIES (severity_rank_sql), and tests/unit/test_vocabulary.py checks the statements that spell
it out in SQL against it.
"""

from __future__ import annotations

# -- severities --------------------------------------------------------------------------------------

# Most severe first: rank 0 is the worst.
SEVERITIES = ("critical", "high", "medium", "low")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
UNKNOWN_SEVERITY = "unknown"


def severity_rank(severity: str | None) -> int:
    """0 for critical .. 3 for low; anything else after them."""
    return SEVERITY_RANK.get(severity or "", len(SEVERITIES))


def severity_of_rank(rank: int) -> str:
    return SEVERITIES[rank] if 0 <= rank < len(SEVERITIES) else UNKNOWN_SEVERITY


def severity_rank_sql(expression: str, unknown: int = len(SEVERITIES)) -> str:
    """A SQL CASE giving the rank of SEVERITIES (0 = most severe) to a severity column, `unknown` otherwise.

    `expression` is a column name of the caller's statement, never text from a request."""
    whens = " ".join(f"WHEN '{name}' THEN {rank}" for rank, name in enumerate(SEVERITIES))
    return f"CASE {expression} {whens} ELSE {unknown} END"


# -- frameworks --------------------------------------------------------------------------------------

def framework_sort_key(framework: str) -> tuple:
    """cis_v1.2.0 < cis_v1.10.0 < ... < iam_hygiene (unversioned names sort by name)."""
    name, sep, version = framework.rpartition("_v")
    if not sep:
        return (framework, ())
    return (name, tuple(int(p) for p in version.split(".") if p.isdigit()))


def control_sort_key(check_id: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in check_id.split("."))


# Families spelled otherwise than their prefix; any other framework keeps its catalogue name (iam_hygiene,
# a custom acme_baseline), with a version split off where it ends in _v<digits> (acme_baseline_v2).
FAMILY_NAMES = {"cis": "CIS"}


def framework_family(framework: str) -> tuple[str, str]:
    """('CIS', 'v7.0.0') for cis_v7.0.0, ('iam_hygiene', '') for iam_hygiene, ('acme', 'v2') for acme_v2."""
    name, sep, version = framework.rpartition("_v")
    if not sep or not name or not version[:1].isdigit():
        return framework, ""
    return FAMILY_NAMES.get(name, name), f"v{version}"


def framework_label(framework: str) -> str:
    """cis_v7.0.0 -> 'CIS v7.0.0', iam_hygiene -> 'iam_hygiene', acme_baseline_v2 -> 'acme_baseline v2'."""
    return " ".join(p for p in framework_family(framework) if p)


def framework_numbers(controls: list[tuple[str, str]]) -> str:
    """'CIS v1.2.0 1.12 · v6.0.0 2.3 · iam_hygiene IH.1': each framework family named once."""
    out, family = [], None
    for framework, check_id in sorted(controls, key=lambda c: framework_sort_key(c[0])):
        name, version = framework_family(framework)
        head = version if name == family and version else f"{name} {version}".strip()
        family = name
        out.append(f"{head} {check_id}")
    return " · ".join(out)


# -- the headline and the pass rate ------------------------------------------------------------------

UNIT = "findings"
ALL = "all"  # the scope of every framework at once
DEFINITION = ("a finding = one control logic × account × resource, counted once at its worst verdict over the "
              "frameworks (fail, else error, else muted, else pass)")
PASS_RATE = "pass rate of findings = passing / (passing + failing); errors and muted findings counted apart"
# The other unit: one verdict per framework control and resource (a finding in 9 CIS versions is 9 rows).
FRAMEWORK_ROWS = "framework rows (one verdict per framework, control and resource)"
RATE_FORMULA = "pass / (pass + fail)"


def pass_ratio(passed: int, failed: int) -> float | None:
    """pass / (pass + fail) as a fraction; None when nothing was decided (errors and muted are apart)."""
    decided = passed + failed
    return passed / decided if decided else None


def pass_rate(passed: int, failed: int) -> float | None:
    """pass / (pass + fail) in percent, one decimal; None when nothing was decided."""
    ratio = pass_ratio(passed, failed)
    return None if ratio is None else round(100.0 * ratio, 1)


# A rate in percent below a threshold gets its tone: red under 50 %, amber under 80 %, green otherwise.
RATE_TONES = ((50.0, "bad"), (80.0, "warn"))
GOOD = "good"
TONE_COLOURS = {"bad": "#cf222e", "warn": "#d97706", "good": "#1a7f37"}


def rate_tone(percent: float | None) -> str:
    """'bad', 'warn' or 'good' for a pass rate in percent; '' when there is none."""
    if percent is None:
        return ""
    for below, tone in RATE_TONES:
        if percent < below:
            return tone
    return GOOD
