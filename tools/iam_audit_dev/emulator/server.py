"""Run the emulator: ``python -m iam_audit_dev.emulator.server --port P [--host H] [--ready-file F]``."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Must be set before moto builds IAM backends.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def build_app() -> Any:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from . import patches
    from .middleware import EmulatorMiddleware

    patches.apply()
    return EmulatorMiddleware(DomainDispatcherApplication(create_backend_app))


def _wait_and_signal_ready(host: str, port: int, ready_file: str | None) -> None:
    probe = "127.0.0.1" if host in ("0.0.0.0", "") else host
    while True:
        try:
            with socket.create_connection((probe, port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.05)
    print(f"emulator listening on http://{host}:{port}", flush=True)
    if ready_file:
        tmp = Path(ready_file + ".tmp")
        tmp.write_text(f"http://{probe}:{port}\n")
        tmp.replace(ready_file)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("EMULATOR_PORT", 5000)))
    parser.add_argument("--ready-file", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    app = build_app()
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    server.daemon_threads = True

    def _stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    threading.Thread(
        target=_wait_and_signal_ready, args=(args.host, args.port, args.ready_file), daemon=True
    ).start()
    try:
        server.serve_forever()
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
