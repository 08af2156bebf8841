"""Build the iam-audit wheel (and sdist) from a copy of the checkout's packaging inputs, so that tests
running at once never share setuptools' build/ folder or the checkout's egg-info."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import PROJECT_ROOT

# Seconds per step of make test-install, printed at the end of the session (tests/install/conftest.py).
TIMINGS: dict[str, float] = {}
# What pyproject.toml builds from: the package and the build configuration (the compose Dockerfile copies the same).
INPUTS = ("pyproject.toml", "src")


def build_dist(out_dir: Path, sdist: bool = False) -> Path:
    """Build into out_dir with `python -m build --no-isolation` (setuptools from the dev venv, offline);
    returns the wheel's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="iam-audit-build-") as tmp:
        tree = Path(tmp) / "iam-audit"
        for name in INPUTS:
            source, target = PROJECT_ROOT / name, tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy2(source, target)
        kind = [] if sdist else ["--wheel"]
        subprocess.run([sys.executable, "-m", "build", "--no-isolation", *kind, "--outdir", str(out_dir), str(tree)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    (wheel,) = out_dir.glob("iam_audit-*.whl")
    return wheel
