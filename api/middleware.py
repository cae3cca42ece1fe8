"""What every request goes through, outermost first:

1. ``ObserveRequests``: the request's latency into /metrics (by route
   template) and its row into the access log (``api/access_log.py``).
2. ``SecurityHeaders``: nosniff, same-origin referrers, no framing and a
   Content-Security-Policy for server-rendered pages that load nothing from
   elsewhere (images also from the GSI tile server, the optional basemap).
3. ``SafeErrors``: a NUL byte in the path or query is a 400 before any
   route sees it; an error no route handled is logged with its traceback
   and answered by the app's handler for Exception when it has one that
   answers (the pages' error page), else with a JSON 500 that shows
   nothing of the inside.

Besides: a value the database refuses as invalid (psycopg ``DataError``:
out of range, malformed, a NUL byte in a body) is a 422, while a database
that does not answer stays a 503 (``api/app.py``); and a path with a
trailing slash is not redirected (the redirect would be built from the Host
header a client sends), it answers 404.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from psycopg import DataError, errors
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agri.api.access_log import AccessLog, Entry, loggable_path
from agri.api.broker_probe import BrokerCheck, broker_address
from agri.api.metrics import UNMATCHED, HttpMetrics
from agri.api.pools import Databases
from agri.settings import Settings

logger = logging.getLogger(__name__)

CSP = ("default-src 'self'; img-src 'self' data: https://cyberjapandata.gsi.go.jp; "
       "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")
# FastAPI's interactive API docs load Swagger UI / ReDoc from a CDN and run
# an inline script; only those pages may.
DOCS_CSP = ("default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
            "frame-ancestors 'none'")
HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "same-origin",
           "x-frame-options": "DENY"}
_RAW = tuple((k.encode(), v.encode()) for k, v in HEADERS.items())
_CSP_RAW = (b"content-security-policy", CSP.encode())
_DOCS_CSP_RAW = (b"content-security-policy", DOCS_CSP.encode())
# Monitoring asks these every few seconds; answered well, they are not logged.
NOT_LOGGED_WHEN_OK = frozenset({"/healthz", "/metrics"})

NUL_DETAIL = ("the request's path or query contains a NUL byte (%00), which no id or "
              "value may contain: remove it")
INTERNAL_DETAIL = ("internal error: the request was not completed; the operator finds "
                   "the details in the API's log")


def _json(status: int, detail: str) -> tuple[Message, Message]:
    body = orjson.dumps({"detail": detail})
    return ({"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]},
            {"type": "http.response.body", "body": body})


class ObserveRequests:
    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = datetime.now(UTC)
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, observed_send)
        finally:
            self.metrics.in_flight.dec()
            duration_s = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe(route=route, method=scope["method"], status=status,
                                 duration_s=duration_s)
            self._log(scope, arrived, status, duration_s)

    def _log(self, scope: Scope, arrived: datetime, status: int, duration_s: float) -> None:
        access_log: AccessLog | None = getattr(scope["app"].state, "access_log", None)
        if access_log is None or (scope["path"] in NOT_LOGGED_WHEN_OK and status < 400):
            return
        client = scope.get("client")
        access_log.record(Entry(
            time=arrived, user_name=(scope.get("state") or {}).get("user_name"),
            client=client[0] if client else "", method=scope["method"][:16],
            path=loggable_path(scope["path"]), status=status,
            duration_ms=round(duration_s * 1000, 3)))


class SecurityHeaders:
    """Sets the headers a response has not set itself."""

    def __init__(self, app: ASGIApp, *, docs_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = _DOCS_CSP_RAW if scope["path"] in self.docs_paths else _CSP_RAW

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in (*_RAW, csp) if h[0] not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SafeErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
            for message in _json(400, NUL_DETAIL):
                await send(message)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as exc:
            logger.exception("unhandled error answering %s %s", scope["method"],
                             loggable_path(scope["path"]))
            if started:
                raise  # too late for an answer: the server ends the connection
            response = await _handled(scope, receive, exc)
            if response is not None:
                await response(scope, receive, send)
                return
            for message in _json(500, INTERNAL_DETAIL):
                await send(message)


async def _handled(scope: Scope, receive: Receive, exc: Exception) -> Response | None:
    """The answer of a handler the app registered for Exception (the pages'
    error page), or None when there is none or it raised (the JSON 500)."""
    app = scope.get("app")
    handler = getattr(app, "exception_handlers", {}).get(Exception)
    if handler is None:
        return None
    try:
        response = handler(Request(scope, receive), exc)
        return await response if inspect.isawaitable(response) else response
    except Exception:  # it declined, or failed: the JSON 500 answers
        return None


def _data_error_detail(exc: DataError) -> str:
    if isinstance(exc, errors.NumericValueOutOfRange):
        return "a number in the request is out of range: check ids, cursors and limits"
    if isinstance(exc, errors.StringDataRightTruncation):
        return "a text in the request is too long"
    if "NUL" in str(exc):
        return "a text in the request contains a NUL byte (\\u0000), which no value may hold"
    return "a value in the request is not valid for what it names: check its type and format"


async def invalid_value(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DataError)  # noqa: S101 (registered for DataError only)
    logger.info("refused %s %s: the database found a value invalid: %s", request.method,
                loggable_path(request.url.path), exc)
    return JSONResponse({"detail": _data_error_detail(exc)}, status_code=422)


def install(app: FastAPI) -> None:
    """Add the middlewares and handlers above to ``app`` (before it starts)."""
    app.router.redirect_slashes = False
    app.state.http_metrics = HttpMetrics()
    docs = frozenset(p for p in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
                     if p)
    app.add_exception_handler(DataError, invalid_value)
    app.add_middleware(SafeErrors)
    app.add_middleware(SecurityHeaders, docs_paths=docs)
    app.add_middleware(ObserveRequests, metrics=app.state.http_metrics)


@asynccontextmanager
async def running(app: FastAPI, settings: Settings, databases: Databases) -> AsyncIterator[None]:
    """While the app runs: the access log's writer and the broker check."""
    metrics: HttpMetrics = app.state.http_metrics
    access_log = AccessLog(databases, retention_days=settings.access_log_days,
                           on_drop=metrics.access_log_dropped.inc)
    app.state.broker_check = BrokerCheck(broker_address(settings))
    access_log.start()
    app.state.access_log = access_log
    try:
        yield
    finally:
        app.state.access_log = None
        await access_log.stop()
