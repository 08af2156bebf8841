"""The built wheel, once per test session."""

from __future__ import annotations

import pytest

from tests.install.build import build_dist


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    return build_dist(tmp_path_factory.mktemp("dist"))
