"""make validate-controls DIR=...: `python -m iam_audit.custom validate DIR` on the dev environment's
embedded PostgreSQL (started if it is not running; the validation works in a throw-away database)."""

from __future__ import annotations

import sys

from iam_audit.custom.__main__ import main as validate_main
from iam_audit_dev.devenv.postgres import start_postgres
from iam_audit_dev.devenv.stack import STATE_DIR


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m iam_audit_dev.devenv.validate_controls <folder>", file=sys.stderr)
        return 2
    return validate_main(["validate", argv[0], "--dsn", start_postgres(STATE_DIR / "pg").conninfo()])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
