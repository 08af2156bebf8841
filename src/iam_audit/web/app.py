"""The Compliance page's FastAPI app: authorisation, the routes, a bounded number of concurrent reads,
and a short cache of answers.

Routes (under /compliance): ``/`` the page, ``/api/summary`` the same data as JSON, ``/report/<date>`` the
HTML report of a snapshot date as the run stored it (iam_audit.tasks.publish_report), ``/icon.svg``.
Query parameters (iam_audit.web.params): ``framework``, ``account``, ``severity`` filter; ``page``,
``page_size`` and ``sort`` choose one page of accounts; anything else, or a bad value, is a 400 naming the
parameter. Only users who may read the DAG ``aws_iam_cis`` see it; when Airflow's authorization cannot
be imported the page refuses to serve (503) rather than serve without it.
"""

import logging
import os
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from iam_audit.web import DAG_ID
from iam_audit.web.params import FilterError
from iam_audit.web.queries import load_compliance, page_deadline_seconds
from iam_audit.web.render import render_page, static_bytes

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("iam_audit.web")  # one logger for the whole page


def _authorize() -> Any:
    """Who may see the page: whoever may read the DAG (the UI's session cookie is sent to the frame).

    Without Airflow's authorization the page must not be served at all (fail closed)."""
    from fastapi import HTTPException

    try:
        from airflow.api_fastapi.core_api.security import requires_access_dag
    except ImportError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log.error("Compliance page disabled: Airflow's authorization could not be imported (%s)", reason)

        def refuse() -> None:
            raise HTTPException(status_code=503, detail="The Compliance page is disabled: Airflow's authorization "
                                                        "is unavailable in this API server (see its log).")

        return refuse
    return requires_access_dag("GET", param_dag_id=DAG_ID)


def page_concurrency() -> int:
    """Requests of the page read from the database at most this many at a time (the others wait)."""
    return max(1, int(os.environ.get("IAM_AUDIT_PAGE_CONCURRENCY", "2")))


def page_cache_seconds() -> float:
    """The same parameters within this time reuse the last answer instead of querying again."""
    return max(0.0, float(os.environ.get("IAM_AUDIT_PAGE_CACHE_SECONDS", "30")))


class PageCache:
    """The page's answers per parameter set for page_cache_seconds, at most `entries` of them (oldest out)."""

    def __init__(self, entries: int = 64) -> None:
        self.entries = entries
        self._data: dict[tuple, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def load(self, params: dict[str, str]) -> dict[str, Any]:
        key = tuple(sorted(params.items()))
        with self._lock:
            hit = self._data.get(key)
            if hit and hit[0] > time.monotonic():
                return hit[1]
        data = load_compliance(params=params)
        ttl = page_cache_seconds()
        if ttl:
            with self._lock:
                self._data.pop(key, None)
                self._data[key] = (time.monotonic() + ttl, data)
                while len(self._data) > self.entries:
                    self._data.pop(next(iter(self._data)))
        return data


def create_app() -> "FastAPI":
    # imported here, not at the top: every task process loads the plugins (for their macros) and
    # never serves the page; annotations below are evaluated in this scope (no `from __future__`)
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    app = FastAPI(title="CIS compliance", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(_authorize())])

    limiter: list[Any] = []  # created on the first request: an anyio limiter needs the running event loop
    cache = PageCache()

    async def _load(request: Request) -> tuple[dict[str, Any] | None, str | None, int]:
        import anyio

        if not limiter:
            limiter.append(anyio.CapacityLimiter(page_concurrency()))
        params = dict(request.query_params)
        try:
            # The page's reads run in threads of its own small limiter, never in the thread pool that the
            # API server's synchronous routes (the Execution API's included) share, and give up at the deadline.
            with anyio.fail_after(page_deadline_seconds()):
                return await anyio.to_thread.run_sync(cache.load, params, limiter=limiter[0],
                                                      abandon_on_cancel=True), None, 200
        except FilterError as exc:
            return None, f"Bad filter: {exc}", 400
        except TimeoutError:
            log.warning("Compliance page: no answer within %ss (%d requests at most at a time)",
                        page_deadline_seconds(), page_concurrency())
            return None, "The Compliance page is busy: try again in a moment.", 503
        except Exception:  # the viewer gets a reference; host, login and the error go to the log only
            reference = uuid.uuid4().hex[:12]
            log.exception("Compliance page: reading the compliance database failed (reference %s)", reference)
            return None, (f"The compliance database could not be read (reference {reference}). An administrator "
                          "finds the cause under that reference in the API server's log."), 503

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> HTMLResponse:
        data, error, status = await _load(request)
        return HTMLResponse(render_page(data, error), status_code=status)

    @app.get("/api/summary")
    async def summary(request: Request) -> JSONResponse:
        data, error, status = await _load(request)
        if error is not None:
            return JSONResponse({"error": error}, status_code=status)
        return JSONResponse(data)

    @app.get("/report/{day}", response_class=HTMLResponse)
    async def stored_report(day: str) -> Response:
        """The HTML report the run of that date stored, as it stored it (a self-contained document)."""
        import anyio

        from iam_audit.web.reports import ReportNotFound, parse_day, read_stored_report

        try:
            day = parse_day(day)
        except ValueError as exc:
            return HTMLResponse(render_page(None, error=f"Bad date: {exc}"), status_code=400)
        try:
            body = await anyio.to_thread.run_sync(read_stored_report, day)
        except ReportNotFound as exc:
            return HTMLResponse(render_page(None, error=str(exc)), status_code=404)
        except Exception:  # the viewer gets a reference; the bucket, credentials and the error go to the log
            reference = uuid.uuid4().hex[:12]
            log.exception("Compliance page: reading the stored report of %s failed (reference %s)", day, reference)
            return HTMLResponse(render_page(None, error=f"The report could not be read (reference {reference})."),
                                status_code=503)
        return Response(body, media_type="text/html; charset=utf-8")

    @app.get("/icon.svg", include_in_schema=False)
    def icon() -> Response:
        return Response(static_bytes("icon.svg"), media_type="image/svg+xml")

    return app


class LazyApp:
    """The page's ASGI app, built on its first request in the API server.

    Building it imports Airflow's API security (about 1.7 CPU-seconds), and every task instance's
    process loads the plugins folder (the task runner integrates plugin macros) without ever
    serving the page: built at import, it cost each task instance more than the rest of its
    start-up (docs/performance.md, "Airflow's own overhead per task instance")."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._app = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = self._factory()
        await self._app(scope, receive, send)


