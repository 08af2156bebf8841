"""Pin the external images of docker-compose.yaml and the Dockerfile by digest (`make pin-images`).

`image: postgres:16.6-bookworm` becomes `image: postgres:16.6-bookworm@sha256:<digest>` (the digest of the
tag's manifest list, so every platform stays pinned), `FROM apache/airflow:3.3.2-python3.11 AS runtime`
likewise. Images built by the compose file itself (`${AIRFLOW_IMAGE_NAME:-...}`) and Dockerfile stages are
left alone; a reference that already has a digest is kept. The digest comes from the registry through the
first of crane, skopeo or `docker buildx imagetools` found on PATH; without a registry in reach nothing is
written and the command fails, naming the image.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# compose: a plain `image:` value; `${VAR:-default}` names an image the compose file builds itself
COMPOSE_IMAGE = re.compile(r"^(?P<lead>\s*image:\s*)(?P<ref>[^\s$#'\"]+)(?P<tail>\s*(?:#.*)?)$", re.M)
DOCKERFILE_FROM = re.compile(r"^(?P<lead>FROM\s+(?:--platform=\S+\s+)?)(?P<ref>\S+)(?P<tail>(?:\s+AS\s+\S+)?\s*)$",
                             re.M | re.I)


class PinError(RuntimeError):
    pass


def _stages(text: str) -> set[str]:
    return {m.group(1).lower() for m in re.finditer(r"^FROM\s+\S+(?:\s+\S+)*?\s+AS\s+(\S+)", text, re.M | re.I)}


def references(text: str, dockerfile: bool) -> list[str]:
    """External image references of a compose file or Dockerfile, pinned or not."""
    if not dockerfile:
        return [m.group("ref") for m in COMPOSE_IMAGE.finditer(text)]
    stages = _stages(text)
    return [m.group("ref") for m in DOCKERFILE_FROM.finditer(text)
            if m.group("ref").lower() not in stages and m.group("ref").lower() != "scratch"]


def unpinned(text: str, dockerfile: bool) -> list[str]:
    return [ref for ref in references(text, dockerfile) if "@" not in ref]


def pin(text: str, dockerfile: bool, resolve: Callable[[str], str]) -> str:
    """The text with every unpinned external reference given its digest (resolve(ref) -> 'sha256:...')."""
    todo = set(unpinned(text, dockerfile))
    digests = {}
    for ref in sorted(todo):
        digest = resolve(ref)
        if not DIGEST.fullmatch(digest or ""):
            raise PinError(f"{ref}: the registry answered {digest!r}, not a sha256 digest")
        digests[ref] = digest
    pattern = DOCKERFILE_FROM if dockerfile else COMPOSE_IMAGE

    def replace(m: re.Match) -> str:
        ref = m.group("ref")
        if ref not in digests:
            return m.group(0)
        return f"{m.group('lead')}{ref}@{digests[ref]}{m.group('tail')}"

    return pattern.sub(replace, text)


def _run(argv: list[str]) -> bytes:
    done = subprocess.run(argv, capture_output=True, timeout=120)
    if done.returncode:
        raise PinError(f"{' '.join(argv)}: {done.stderr.decode(errors='replace').strip()[-500:]}")
    return done.stdout


def resolve(ref: str) -> str:
    """The digest of the manifest (list) the registry serves for `ref`."""
    if shutil.which("crane"):
        return _run(["crane", "digest", ref]).decode().strip()
    if shutil.which("skopeo"):
        # the raw manifest's own SHA-256 is its digest (the list's, not one platform's)
        return "sha256:" + hashlib.sha256(_run(["skopeo", "inspect", "--raw", f"docker://{ref}"])).hexdigest()
    if shutil.which("docker"):
        manifest = json.loads(_run(["docker", "buildx", "imagetools", "inspect", ref, "--format",
                                    "{{json .Manifest}}"]))
        return manifest["digest"]
    raise PinError("none of crane, skopeo or docker (buildx) is installed: install one "
                   "(Debian: apt-get install skopeo) and run make pin-images where the registry is reachable")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make pin-images", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path, help="compose files and Dockerfiles")
    p.add_argument("--check", action="store_true", help="only list unpinned references; exit 1 if any")
    args = p.parse_args(argv)
    texts = {path: path.read_text() for path in args.files}
    is_dockerfile = {path: path.name.lower().startswith("dockerfile") for path in args.files}
    if args.check:
        missing = [f"{path}: {ref}" for path, text in texts.items() for ref in unpinned(text, is_dockerfile[path])]
        print("\n".join(missing) or "every external image is pinned by digest")
        return 1 if missing else 0
    try:
        pinned = {path: pin(text, is_dockerfile[path], resolve) for path, text in texts.items()}
    except PinError as exc:  # nothing written: all files or none
        print(f"make pin-images: {exc}", file=sys.stderr)
        return 2
    for path, text in pinned.items():
        if text != texts[path]:
            path.write_text(text)
            print(f"{path}: pinned")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
