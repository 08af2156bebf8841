"""What the browser tests share (tests/ui for the Airflow UI, tests/bi for Superset): Debian's Chromium
driven by Playwright (which never downloads a browser), and the server processes they start."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("IAM_AUDIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]


def require_browser(make_target: str) -> None:
    """Skip unless Chromium and Playwright are installed (`make_target` installs both)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} ({make_target} installs Debian's chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip(f"Python package playwright is not installed ({make_target} installs it)")


@contextmanager
def browser_page(base_url: str, width: int, height: int, timeout_ms: int) -> Iterator:
    """A page of a fresh headless Chromium with its own context; closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, base_url=base_url)
            context.set_default_timeout(timeout_ms)
            yield context.new_page()
            context.close()
        finally:
            browser.close()


def wait_http(url: str, proc: subprocess.Popen, log: Path, what: str, timeout: float,
              interval: float = 1) -> None:
    """Until `url` answers 200; fails with the end of `log` if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local URL
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval)
    pytest.fail(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def stop_group(proc: subprocess.Popen) -> None:
    """Stop the process group of a server started with start_new_session=True (servers fork workers)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
