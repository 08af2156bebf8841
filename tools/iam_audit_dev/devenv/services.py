"""Airflow's own components on the embedded stack: one way to start them, one way to stop them.

`make airflow`, `make backfill` and the tests start the scheduler, the DAG processor and the API
server (which also serves the Execution API the tasks talk to) as separate processes in one
process group of their own, with LocalExecutor. With executor="CeleryExecutor" (as docker-compose.yaml)
the same start also runs a Redis broker (Debian's redis-server, on 127.0.0.1 at a free port) and
`airflow celery worker` processes, each with a hostname of its own. Stopping sends SIGTERM to the
whole group and to every descendant, then SIGKILL to whatever is left after a grace period.

Task logs are written by the workers under $AIRFLOW_HOME/logs and read by the API server from
the same directory, so the UI shows them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iam_audit_dev.devenv.runner import DAG_ID, airflow_bin

BACKFILL_COMPONENTS = ("scheduler", "dag-processor", "api-server")
UI_COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
STATE_FILE = "services.json"
EXECUTORS = ("LocalExecutor", "CeleryExecutor")
WORKER_NAME_VARIABLE = "IAM_AUDIT_WORKER_NAME"


class ServicesError(RuntimeError):
    pass


def _jwt_secret(airflow_home: Path) -> str:
    """One secret per AIRFLOW_HOME, shared by the API server and the workers (kept out of the repo)."""
    path = airflow_home / "jwt_secret"
    if not path.exists():
        airflow_home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(64))  # HS512 wants 64 bytes or more
        path.chmod(0o600)
    return path.read_text().strip()


def worker_hostname() -> str:
    """`[core] hostname_callable` of the Celery workers started here: several workers on one machine
    record distinct task instance hostnames (`<host>-<worker name>`), as workers on distinct machines do."""
    name = os.environ.get(WORKER_NAME_VARIABLE)
    return f"{socket.getfqdn()}-{name}" if name else socket.getfqdn()


def redis_server_bin() -> str:
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                             else None)
    if not found:
        raise ServicesError("CeleryExecutor needs a Redis broker: redis-server is not installed "
                            "(Debian: apt-get install -y redis-server)")
    return found


def service_env(env: dict[str, str], port: int, schedule: bool = True, executor: str = "LocalExecutor",
                broker_port: int | None = None) -> dict[str, str]:
    """The configuration the components share. schedule=False: the scheduler creates no scheduled
    runs (a backfill's own scheduler must not start today's live run)."""
    from iam_audit_dev.emulator.process import free_port

    if executor not in EXECUTORS:
        raise ServicesError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    home = Path(env["AIRFLOW_HOME"])
    celery = {}
    if executor == "CeleryExecutor":
        metadata = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
        if not metadata.startswith("postgresql"):
            raise ServicesError("CeleryExecutor needs a PostgreSQL metadata database "
                                "(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN); got " + (metadata or "none"))
        celery = {
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{broker_port}/0",
            # as docker-compose.yaml: task results in the metadata database
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": env.get("AIRFLOW__CELERY__WORKER_CONCURRENCY", "2"),
            # Sending a task to the broker timed out at the default 1 s on this loaded 2-core machine.
            "AIRFLOW__CELERY__OPERATION_TIMEOUT": env.get("AIRFLOW__CELERY__OPERATION_TIMEOUT", "10"),
        }
    return {
        **env,
        **celery,
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": _jwt_secret(home),
        # Local development only: every visitor of the UI (bound to 127.0.0.1) is an admin.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True" if schedule else "False",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # The log servers of the scheduler's workers and of the triggerer default to fixed ports.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # A busy 2-core machine with a SQLite metadata database answers slowly, not wrongly.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__API__WORKERS": "1",
        "PATH": os.pathsep.join([str(Path(airflow_bin()).parent), env.get("PATH", os.environ.get("PATH", ""))]),
    }


@dataclass
class AirflowServices:
    env: dict[str, str]
    port: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    _token: str | None = None
    killed: set[str] = field(default_factory=set)

    @property
    def workers(self) -> dict[str, str]:
        """Celery worker process name -> the hostname its task instances record."""
        host = socket.getfqdn()
        return {name: f"{host}-{name}" for name in self.procs if name.startswith("celery-worker-")}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"])

    @property
    def pgid(self) -> int:
        return next(iter(self.procs.values())).pid

    # -- REST API (the one the UI uses)
    def _http(self, method: str, path: str, body: Any = None, auth: bool = True, timeout: float = 30) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - local URL
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ServicesError(f"{method} {path} -> HTTP {exc.code}: {exc.read().decode(errors='replace')[:2000]}") \
                from None
        content = raw.decode(errors="replace")
        try:
            return json.loads(content) if content else None
        except json.JSONDecodeError:
            return content

    def token(self) -> str:
        if self._token is None:
            self._token = self._http("GET", "/auth/token", auth=False)["access_token"]
        return self._token

    def api(self, method: str, path: str, body: Any = None, attempts: int = 5) -> Any:
        for attempt in range(attempts):
            try:
                return self._http(method, "/api/v2" + path, body, timeout=120)
            except (TimeoutError, urllib.error.URLError):
                if attempt == attempts - 1:
                    raise
                self.check_alive()
                time.sleep(2)

    def healthy(self) -> bool:
        try:
            health = self._http("GET", "/api/v2/monitor/health", auth=False, timeout=5)
        except (OSError, ServicesError):
            return False
        return health.get("scheduler", {}).get("status") == "healthy"

    def wait_ready(self, timeout: float | None = None, dag_id: str | None = DAG_ID) -> None:
        """Until the API answers, the scheduler heartbeats and (if given) the DAG is parsed. On a loaded
        2-core machine this took over 5 minutes; IAM_AUDIT_AIRFLOW_READY_SECONDS (default 900) bounds it."""
        timeout = timeout or float(os.environ.get("IAM_AUDIT_AIRFLOW_READY_SECONDS", "900"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.healthy():
                if dag_id is None:
                    return
                try:
                    self.api("GET", f"/dags/{dag_id}")
                    return
                except ServicesError:
                    pass
            time.sleep(1)
        raise ServicesError(f"Airflow not ready after {timeout:.0f} s; logs: {self.home / 'services'}")

    def wait_workers(self, timeout: float | None = None) -> None:
        """Until every Celery worker said it is ready (its log's `celery@<name> ready.`)."""
        timeout = timeout or float(os.environ.get("IAM_AUDIT_AIRFLOW_READY_SECONDS", "900"))
        deadline = time.monotonic() + timeout
        waiting = set(self.workers)
        while waiting and time.monotonic() < deadline:
            self.check_alive()
            waiting = {n for n in waiting
                       if " ready." not in (self.home / "services" / f"{n}.log").read_text(errors="replace")}
            time.sleep(1)
        if waiting:
            raise ServicesError(f"Celery workers {sorted(waiting)} not ready after {timeout:.0f} s; "
                                f"logs: {self.home / 'services'}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> list[int]:
        """Send `sig` to one component and every process under it at once (a machine that goes away);
        returns their pids. The others keep running; check_alive no longer reports this one."""
        import psutil

        procs = _descendants([self.procs[name].pid])
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        self.killed.add(name)
        self.procs[name].wait(timeout=30)
        return [p.pid for p in procs]

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if name in self.killed:
                continue
            if proc.poll() is not None:
                raise ServicesError(f"airflow {name} exited with {proc.returncode}; "
                                    f"log: {self.home / 'services' / (name + '.log')}")

    # -- lifecycle
    def stop(self, grace: float = 10) -> None:
        """SIGTERM to the group and every descendant; SIGKILL to what is left after `grace` seconds."""
        terminate_group(self.pgid, [p.pid for p in self.procs.values()], grace)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        state = self.home / STATE_FILE
        if state.exists():
            state.unlink()


def _descendants(pids: list[int]) -> list[Any]:
    import psutil

    found = []
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            found += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return found


def terminate_group(pgid: int | None, pids: list[int], grace: float = 10) -> list[int]:
    """Stop a process group and every descendant of `pids` (some task runners start their own
    sessions); returns the pids that were still alive when this gave up (normally none)."""
    import psutil

    procs = _descendants(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if pgid:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _, procs = psutil.wait_procs(procs, timeout=grace if sig == signal.SIGTERM else 5)
        if not procs:
            break
    return [p.pid for p in procs]


def start(env: dict[str, str], components: tuple[str, ...] = BACKFILL_COMPONENTS, port: int | None = None,
          schedule: bool = True, executor: str = "LocalExecutor", celery_workers: int = 2) -> AirflowServices:
    """Start the components in a new process group; record them in $AIRFLOW_HOME/services.json.
    CeleryExecutor: also a Redis broker (first) and `celery_workers` Celery workers."""
    from iam_audit_dev.emulator.process import free_port

    port = port or free_port()
    celery = executor == "CeleryExecutor"
    broker_port = free_port() if celery else None
    env = service_env(env, port, schedule=schedule, executor=executor, broker_port=broker_port)
    home = Path(env["AIRFLOW_HOME"])
    existing = running(home)
    if existing:
        raise ServicesError(f"Airflow is already running on {home} (pids {existing['pids']}, "
                            f"port {existing['port']}): stop it first (`make stop`, or Ctrl-C on `make airflow`)")
    log_dir = home / "services"
    log_dir.mkdir(parents=True, exist_ok=True)
    services = AirflowServices(env=env, port=port)
    commands = {"api-server": [airflow_bin(), "api-server", "--host", "127.0.0.1", "--port", str(port)]}
    extra_env: dict[str, dict[str, str]] = {}
    names = list(components)
    if celery:
        redis_dir = home / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        # A broker for this run only: no persistence, no protected-mode surprises on 127.0.0.1.
        commands["redis"] = [redis_server_bin(), "--bind", "127.0.0.1", "--port", str(broker_port),
                             "--save", "", "--appendonly", "no", "--dir", str(redis_dir)]
        names.insert(0, "redis")
        for i in range(1, celery_workers + 1):
            name = f"celery-worker-{i}"
            # No log server per worker (they would share one port): the API server reads the task
            # logs from the shared log folder, as with LocalExecutor.
            commands[name] = [airflow_bin(), "celery", "worker", "--celery-hostname", f"{name}@%h",
                              "--concurrency", env["AIRFLOW__CELERY__WORKER_CONCURRENCY"], "--skip-serve-logs",
                              "--without-gossip", "--without-mingle"]
            extra_env[name] = {WORKER_NAME_VARIABLE: name,
                               "AIRFLOW__CORE__HOSTNAME_CALLABLE": "iam_audit_dev.devenv.services.worker_hostname"}
            names.append(name)
    try:
        for name in names:
            args = commands.get(name, [airflow_bin(), name])
            # A process group of their own (not the terminal's foreground group): Ctrl-C reaches only
            # the Python process that started them, which then stops them in order.
            group = services.pgid if services.procs else 0
            with open(log_dir / f"{name}.log", "ab") as log:
                services.procs[name] = subprocess.Popen(
                    args, env={**os.environ, **env, **extra_env.get(name, {})}, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, process_group=group)
    except BaseException:
        if services.procs:
            services.stop()
        raise
    (home / STATE_FILE).write_text(json.dumps({
        "pgid": services.pgid, "port": port, "pids": {n: p.pid for n, p in services.procs.items()},
    }))
    return services


def running(airflow_home: Path) -> dict | None:
    """The services recorded for this AIRFLOW_HOME if any of them is still alive."""
    import psutil

    state = airflow_home / STATE_FILE
    if not state.exists():
        return None
    info = json.loads(state.read_text())
    alive = {n: p for n, p in info["pids"].items() if psutil.pid_exists(p)
             and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
    if not alive:
        state.unlink()
        return None
    return {**info, "pids": alive}


def stop_recorded(airflow_home: Path, grace: float = 10) -> list[int]:
    """Stop services another process started (e.g. `make stop` while `make airflow` runs)."""
    info = running(airflow_home)
    if not info:
        return []
    left = terminate_group(info["pgid"], list(info["pids"].values()), grace)
    if not left:
        (airflow_home / STATE_FILE).unlink(missing_ok=True)
    return left
