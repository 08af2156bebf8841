"""An embedded PostgreSQL server from the pgserver wheel: a real server, no system packages.

It listens on a Unix socket inside its data directory. As root, pgserver runs the
server as an unprivileged user it creates.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


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

    def stop(self) -> None:
        import pgserver

        pgserver.get_server(self.data_dir, cleanup_mode="stop").cleanup()


def start_postgres(data_dir: str | os.PathLike) -> EmbeddedPostgres:
    """Start (or reuse) the server in data_dir; it keeps running after this process exits."""
    import pgserver

    data_dir = Path(data_dir).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    return EmbeddedPostgres(data_dir=data_dir, uri=server.get_uri())
