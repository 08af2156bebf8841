"""`make pin-images` (iam_audit_dev.pin_images) on the project's own compose file and Dockerfile, with the
registry replaced by a stand-in `skopeo` on PATH; and the images still pinned by tag only, a known gap."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
from pathlib import Path

import pytest
import yaml
from iam_audit_dev import pin_images

ROOT = Path(__file__).resolve().parents[2]
COMPOSE, DOCKERFILE = (ROOT / "docker-compose.yaml").read_text(), (ROOT / "Dockerfile").read_text()
EXTERNAL = {"postgres", "redis", "apache/airflow"}


def _fake(ref: str) -> str:
    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()


def test_references_are_the_external_images_only():
    compose_refs = pin_images.references(COMPOSE, dockerfile=False)
    dockerfile_refs = pin_images.references(DOCKERFILE, dockerfile=True)
    names = {re.split(r"[:@]", ref)[0] for ref in compose_refs + dockerfile_refs}
    assert names == EXTERNAL, names  # not the images the compose file builds, not the Dockerfile's stages


def test_pin_writes_each_digest_once_and_keeps_the_files_valid():
    compose = pin_images.pin(COMPOSE, False, _fake)
    dockerfile = pin_images.pin(DOCKERFILE, True, _fake)
    assert not pin_images.unpinned(compose, False) and not pin_images.unpinned(dockerfile, True)
    services = yaml.safe_load(compose)["services"]
    for name in ("postgres", "redis"):
        ref = yaml.safe_load(COMPOSE)["services"][name]["image"]
        assert services[name]["image"] == f"{ref}@{_fake(ref)}"
    for name, service in yaml.safe_load(COMPOSE)["services"].items():
        if "build" in service:  # built here: unchanged
            assert services[name]["image"] == service["image"], name
    base = re.search(r"^FROM\s+(\S+)\s+AS runtime", dockerfile, re.M).group(1)
    assert base.startswith("apache/airflow:") and base.endswith("@" + _fake(base.split("@")[0]))
    assert "FROM runtime AS emulator" in dockerfile
    # a second run changes nothing and asks the registry nothing
    assert pin_images.pin(compose, False, lambda ref: pytest.fail(f"asked for {ref}")) == compose


def test_a_malformed_answer_is_refused():
    with pytest.raises(pin_images.PinError, match="not a sha256 digest"):
        pin_images.pin(COMPOSE, False, lambda ref: "latest")


@pytest.fixture()
def fake_skopeo(tmp_path, monkeypatch):
    """A `skopeo` that answers `inspect --raw docker://REF` with a manifest list naming REF."""
    script = tmp_path / "skopeo"
    script.write_text(f"#!{sys.executable}\nimport sys\n"
                      "ref = sys.argv[-1].removeprefix('docker://')\n"
                      "sys.stdout.write('{\"manifests\": [], \"ref\": \"%s\"}' % ref)\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(pin_images.shutil, "which", lambda name: str(script) if name == "skopeo" else None)
    return script


def test_make_pin_images_writes_the_digest_of_the_raw_manifest(tmp_path, fake_skopeo):
    compose, dockerfile = tmp_path / "docker-compose.yaml", tmp_path / "Dockerfile"
    compose.write_text(COMPOSE)
    dockerfile.write_text(DOCKERFILE)
    assert pin_images.main([str(compose), str(dockerfile)]) == 0
    manifest = b'{"manifests": [], "ref": "postgres:16.6-bookworm"}'
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    image = yaml.safe_load(compose.read_text())["services"]["postgres"]["image"]
    assert image == f"postgres:16.6-bookworm@{digest}"
    assert pin_images.main(["--check", str(compose), str(dockerfile)]) == 0


def test_nothing_is_written_when_an_image_does_not_resolve(tmp_path, monkeypatch):
    compose = tmp_path / "docker-compose.yaml"
    compose.write_text(COMPOSE)
    monkeypatch.setattr(pin_images.shutil, "which", lambda name: None)
    assert pin_images.main([str(compose)]) == 2
    assert compose.read_text() == COMPOSE


@pytest.mark.xfail(strict=True, reason="known gap: the image registry is out of reach from where this project is "
                                       "built, so the digests of these tags could not be established; run "
                                       "make pin-images where it is reachable, then drop this marker")
def test_external_images_are_pinned_by_digest():
    assert not pin_images.unpinned(COMPOSE, False) + pin_images.unpinned(DOCKERFILE, True)
