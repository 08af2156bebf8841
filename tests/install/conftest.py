"""The built wheel, once per test session."""

from __future__ import annotations

import pytest

from tests.install.build import TIMINGS, build_dist


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    return build_dist(tmp_path_factory.mktemp("dist"))


def pytest_terminal_summary(terminalreporter):
    """How long each step of make test-install took (the figures of docs/install.md)."""
    if TIMINGS:
        terminalreporter.section("make test-install timings")
        for label, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{label}: {seconds} s")
