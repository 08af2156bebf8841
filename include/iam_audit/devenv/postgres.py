"""An embedded PostgreSQL server from the pgserver wheel: a real server, no system packages.

It listens on a Unix socket inside its data directory. As root, pgserver runs the
server as an unprivileged user it creates.
"""

from __future__ import annotations

import json
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path


def _pgserver():
    # Without XDG_RUNTIME_DIR (containers, CI), platformdirs warns at import and falls back to
    # /tmp/runtime-<uid>, which is fine for pgserver's lock file.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver
    return pgserver


@dataclass(frozen=True)
class EmbeddedPostgres:
    data_dir: Path
    uri: str

    @property
    def socket_dir(self) -> str:
        return str(self.data_dir)

    def airflow_conn_json(self, database: str = "postgres") -> str:
        return json.dumps(
            {"conn_type": "postgres", "host": self.socket_dir, "login": "postgres", "schema": database, "port": 5432}
        )

    def conninfo(self, database: str = "postgres") -> str:
        return f"host={self.socket_dir} user=postgres dbname={database}"

    def connect(self, database: str = "postgres", **kwargs):
        import psycopg

        return psycopg.connect(self.conninfo(database), **kwargs)

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self, timeout: float = 30) -> bool:
        """Fast shutdown of the server, whichever processes still hold pgserver handles on it
        (pgserver itself stops it only when the last one lets go); True when it is down."""
        pid = postmaster_pid(self.data_dir)
        if pid is None:
            return True
        try:
            os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown: abort sessions, checkpoint, exit
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            return False
        (self.data_dir / ".handle_pids.json").unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def postmaster_pid(data_dir: str | os.PathLike) -> int | None:
    """The pid of the server running in data_dir, or None."""
    pid_file = Path(data_dir) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def psql_path() -> Path:
    return Path(_pgserver().__file__).parent / "pginstall" / "bin" / "psql"


def start_postgres(data_dir: str | os.PathLike) -> EmbeddedPostgres:
    """Start (or reuse) the server in data_dir; it keeps running after this process exits."""
    pgserver = _pgserver()

    data_dir = Path(data_dir).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    return EmbeddedPostgres(data_dir=data_dir, uri=server.get_uri())
