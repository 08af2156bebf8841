"""Start the emulator as a subprocess and talk to its control endpoints."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmulatorError(RuntimeError):
    """A control endpoint answered with an error."""


class LocalService:
    """A local AWS stand-in process with the emulator's control endpoints (`/_emulator/...`):
    the emulator here, the benchmark's replaying stand-in (iam_audit_dev.standin)."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log_path: str):
        self.proc = proc
        self.url = url
        self.log_path = log_path

    # -- HTTP helpers
    def _request(self, method: str, path: str, payload: Any = None, timeout: float = 3600) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - local URL
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise EmulatorError(f"{method} {path} -> HTTP {exc.code}: {detail[-4000:]}") from exc
        return json.loads(raw) if raw else None

    def health(self) -> bool:
        try:
            return bool(self._request("GET", "/_emulator/health", timeout=2).get("ok"))
        except OSError:
            return False

    def calls(self) -> list[dict[str, Any]]:
        return self._request("GET", "/_emulator/calls")["calls"]

    def reset_calls(self) -> None:
        self._request("DELETE", "/_emulator/calls")

    def stop(self, timeout: float = 10) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Emulator(LocalService):
    """The moto-based emulator: seeding, faults, root settings, policy enforcement."""

    def seed(self, accounts: int = 5, users: int = 8, seed: int = 42) -> dict[str, Any]:
        return self._request(
            "POST", "/_emulator/seed", {"accounts": accounts, "users": users, "seed": seed}
        )

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        self._request("POST", "/_emulator/faults", {"rules": rules})

    def clear_faults(self) -> None:
        self._request("DELETE", "/_emulator/faults")

    def set_root(self, **spec: Any) -> dict[str, Any]:
        """See middleware.set_root: account_id, mfa, password, password_last_used_days_ago, keys."""
        return self._request("POST", "/_emulator/root", spec)

    def set_aws_managed_policy_versions(self, account_id: str, policy_name: str, count: int) -> dict[str, Any]:
        """Give the account's AWS-managed policy `count` versions ending at its default (1 restores one);
        see managed_versions.set_versions."""
        return self._request("POST", "/_emulator/aws-managed-policy-versions",
                             {"account_id": account_id, "policy_arn": f"arn:aws:iam::aws:policy/{policy_name}",
                              "count": count})

    def requests(self) -> list[dict[str, Any]]:
        """Distinct authorisation requests since the last reset_calls: account, principal, action, resource, context."""
        return self._request("GET", "/_emulator/requests")["requests"]

    def enforce(self, principals: list[dict[str, Any]]) -> None:
        """Enforce identity policies: [{"access_key": K | "role_name": R, "policies": [...]}]."""
        self._request("POST", "/_emulator/enforce", {"principals": principals})

    def refused(self) -> list[dict[str, Any]]:
        return self._request("GET", "/_emulator/enforce")["refused"]

    def clear_enforcement(self) -> None:
        self._request("DELETE", "/_emulator/enforce")

    def deny_unencrypted_puts(self, *buckets: str) -> None:
        """Deny s3:PutObject without x-amz-server-side-encryption in these buckets (as the writer policy does)."""
        self._request("POST", "/_emulator/s3/deny-unencrypted", {"buckets": list(buckets)})

    def allow_unencrypted_puts(self) -> None:
        self._request("DELETE", "/_emulator/s3/deny-unencrypted")

    def proxied_requests(self) -> dict[str, int]:
        """Requests per service that came through an HTTP proxy."""
        return self._request("GET", "/_emulator/proxied")["requests"]

    def issued_credentials(self) -> list[dict[str, Any]]:
        return self._request("GET", "/_emulator/issued-credentials")["credentials"]

    def reset(self) -> None:
        self._request("POST", "/_emulator/reset")



def start_emulator(
    port: int | None = None,
    ready_timeout: float = 60,
    host: str = "127.0.0.1",
    log_path: str | None = None,
    detach: bool = False,
) -> Emulator:
    """detach: run in a session of its own, so that a Ctrl-C meant for the caller's terminal does
    not stop it (the embedded stack outlives `make demo` and `make airflow`)."""
    port = port or free_port()
    tmpdir = tempfile.mkdtemp(prefix="iam-audit-emulator-")
    ready_file = os.path.join(tmpdir, "ready")
    log_path = log_path or os.path.join(tmpdir, "emulator.log")
    env = dict(os.environ)
    env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # Never let the child (which calls itself while seeding) use real credentials/endpoints.
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MOTO_ACCOUNT_ID"):
        env.pop(var, None)
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    cmd = [
        sys.executable, "-m", "iam_audit_dev.emulator.server",
        "--host", host, "--port", str(port), "--ready-file", ready_file,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=detach)
    log.close()
    emu = Emulator(proc, f"http://{host}:{port}", log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"emulator exited with {proc.returncode}: {Path(log_path).read_text()[-4000:]}"
            )
        if os.path.exists(ready_file) and emu.health():
            return emu
        time.sleep(0.05)
    emu.stop()
    raise TimeoutError(f"emulator not ready after {ready_timeout}s; log: {log_path}")
