"""An embedded PostgreSQL server from the pgserver wheel: a real server, no system packages.

It listens on a Unix socket inside its data directory and, when asked (the demo
stack asks), on TCP at 127.0.0.1 for BI tools. TCP connections must give a
password (scram-sha-256); the socket stays trust for the local tools. As root,
pgserver runs the server as an unprivileged user it creates.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

# Port of the TCP listener unless IAM_AUDIT_PG_PORT says otherwise; when it is taken,
# a free port is chosen once and remembered next to the data directory.
DEFAULT_TCP_PORT = 15432
TCP_HOST = "127.0.0.1"
RECOVERY_WAIT_SECONDS = 300


def _pgserver():
    # Without XDG_RUNTIME_DIR (containers, CI), platformdirs warns at import and falls back to
    # /tmp/runtime-<uid>, which is fine for pgserver's lock file.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver
    return pgserver


# Defaults of every login role the project creates (BI tools, the Compliance page): a session left idle
# in a transaction, a runaway query or a flood of connections ends on its own instead of holding locks
# the pipeline's schema changes wait for, or the server's connection slots. They are defaults: a
# session can still change its own settings, which is why the pipeline's locks are rows no reader can lock.
LOGIN_LIMITS = {"statement_timeout": "2min", "idle_in_transaction_session_timeout": "1min", "lock_timeout": "10s"}
LOGIN_CONNECTION_LIMIT = 10


def login_limits_sql(login: str) -> list:
    from psycopg import sql

    role = sql.Identifier(login)
    return ([sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(role, sql.Literal(LOGIN_CONNECTION_LIMIT))]
            + [sql.SQL("ALTER ROLE {} SET {} = {}").format(role, sql.Identifier(name), sql.Literal(value))
               for name, value in LOGIN_LIMITS.items()])


@dataclass(frozen=True)
class EmbeddedPostgres:
    data_dir: Path
    uri: str
    port: int = 5432
    tcp_host: str | None = None

    @property
    def socket_dir(self) -> str:
        return str(self.data_dir)

    def airflow_conn_json(self, database: str = "postgres") -> str:
        return json.dumps(
            {"conn_type": "postgres", "host": self.socket_dir, "login": "postgres", "schema": database,
             "port": self.port}
        )

    def conninfo(self, database: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={database}"

    def connect(self, database: str = "postgres", **kwargs):
        import psycopg

        return psycopg.connect(self.conninfo(database), **kwargs)

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    def ensure_login(self, login: str, in_role: str, password_file: Path) -> str:
        """A LOGIN role member of in_role, with a generated password kept in password_file (mode 0600).

        Idempotent: the stored password is reused and (re)set on the role. Returns the password.
        """
        from psycopg import sql

        if not re.fullmatch(r"[a-z_][a-z0-9_]*", login):
            raise ValueError(f"login {login!r}: use lower-case letters, digits and underscores")
        password_file = Path(password_file)
        password = password_file.read_text().strip() if password_file.exists() else ""
        if not password:
            password = secrets.token_urlsafe(18)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.touch(mode=0o600)
            password_file.write_text(password + "\n")
        with self.connect(autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (in_role,)).fetchone():
                raise RuntimeError(f"role {in_role} does not exist yet: run the pipeline once (make demo) first")
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(login),
                                                                             sql.Literal(password)))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(in_role), sql.Identifier(login)))
            for statement in login_limits_sql(login):
                conn.execute(statement)
        return password

    def tcp_uri(self, login: str, password: str, database: str) -> str:
        """A libpq/SQLAlchemy-style URI over the TCP listener, for BI tools."""
        from urllib.parse import quote

        if self.tcp_host is None:
            raise RuntimeError(f"the PostgreSQL server in {self.data_dir} has no TCP listener")
        return f"postgresql://{quote(login)}:{quote(password, safe='')}@{self.tcp_host}:{self.port}/{database}"

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


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((TCP_HOST, port))
        except OSError:
            return False
    return True


def _choose_tcp_port(data_dir: Path) -> int:
    if os.environ.get("IAM_AUDIT_PG_PORT"):
        return int(os.environ["IAM_AUDIT_PG_PORT"])
    remembered = data_dir.parent / f"{data_dir.name}.tcp_port"
    if remembered.exists():
        return int(remembered.read_text())
    port = DEFAULT_TCP_PORT
    if not _port_is_free(port):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((TCP_HOST, 0))
            port = sock.getsockname()[1]
    remembered.write_text(f"{port}\n")
    return port


def _require_passwords_over_tcp(data_dir: Path) -> None:
    """initdb wrote `trust` for every connection; TCP ones must log in with a password."""
    hba = data_dir / "pg_hba.conf"
    text = hba.read_text()
    fixed = re.sub(r"^(host\S*\s.*\s)trust\s*$", r"\1scram-sha-256", text, flags=re.MULTILINE)
    if fixed != text:
        hba.write_text(fixed)


def _wait_until_ready(data_dir: Path, timeout: float) -> None:
    from pgserver.utils import PostmasterInfo

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = PostmasterInfo.read_from_pgdata(data_dir)
        if info is not None and info.is_running() and info.status == "ready":
            return
        if info is None or not info.is_running():
            break
        time.sleep(1)
    raise RuntimeError(f"PostgreSQL in {data_dir} did not become ready within {timeout:.0f} s "
                       f"(crash recovery or a failed start); see {data_dir / 'log'}")


def start_postgres(data_dir: str | os.PathLike, tcp: bool = False) -> EmbeddedPostgres:
    """Start (or reuse) the server in data_dir; it keeps running after this process exits.

    tcp: also listen on 127.0.0.1 (port: IAM_AUDIT_PG_PORT, else 15432 or a remembered free one);
    a server already running without it is restarted once with it.
    """
    pgserver = _pgserver()
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    data_dir = Path(data_dir).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(data_dir, cleanup_mode=None)
    except subprocess.TimeoutExpired:
        # pgserver waits 10 s for the start; crash recovery after an unclean stop (a reboot, a
        # killed machine) fsyncs the whole data directory first and can take longer
        _wait_until_ready(data_dir, RECOVERY_WAIT_SECONDS)
        server = pgserver.get_server(data_dir, cleanup_mode=None)
    info = PostmasterInfo.read_from_pgdata(data_dir)
    if tcp and info.hostname != TCP_HOST:
        port = _choose_tcp_port(data_dir)
        _require_passwords_over_tcp(data_dir)
        socket_dir = info.socket_dir or data_dir
        pg_ctl(["-w", "-o", f"-h {TCP_HOST} -p {port} -k {socket_dir}", "-l", str(data_dir / "log"), "restart"],
               pgdata=data_dir, user=server.system_user, timeout=60)
        info = PostmasterInfo.read_from_pgdata(data_dir)
        if info is None or info.hostname != TCP_HOST:
            raise RuntimeError(f"PostgreSQL in {data_dir} did not start listening on {TCP_HOST}:{port}; "
                               f"see {data_dir / 'log'}")
    return EmbeddedPostgres(data_dir=data_dir, uri=info.get_uri(), port=info.port or 5432,
                            tcp_host=info.hostname if info.hostname == TCP_HOST else None)
