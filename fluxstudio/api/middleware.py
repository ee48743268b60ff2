"""The one middleware: request id, log context, metrics, the access log line, and the last catch.

Pure ASGI on purpose: Starlette's BaseHTTPMiddleware runs the app in another task (so context variables
bound here would not reach the handlers' log lines) and buffers streaming bodies (SSE, /media). Here the
handler runs in this very task, so `structlog.contextvars` bound before the call are on every line it logs,
and `route` bound by `routing.Route.handle` is still bound when the access line is written.

The last catch: an exception no handler took is logged once, here, with its traceback and the request id,
and the client gets a 500 problem with the request id and nothing else. It is not re-raised, so neither
Starlette nor uvicorn log it a second time.
"""

from __future__ import annotations

import re
import time

import structlog
from starlette.requests import Request
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fluxstudio.api.problems import internal_error
from fluxstudio.ids import new_id
from fluxstudio.log import get_logger
from fluxstudio.runtime.metrics import ApiMetrics

REQUEST_ID_HEADER = "x-request-id"
#: A request id from a proxy or client is kept only if it looks like an id (it lands in every log line).
_GOOD_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Routes polled by machines: their access lines go to debug so they do not drown the rest.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
UNMATCHED = "unmatched"

log = get_logger()


def route_template(scope: Scope) -> str:
    """`/api/v1/jobs/{job_id}` rather than the path itself: bounded label values, useful grouping."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return UNMATCHED
    return path + "/{path}" if isinstance(route, Mount) else path


class RequestContext:
    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        method = scope.get("method", "WEBSOCKET")
        with structlog.contextvars.bound_contextvars(request_id=request_id, method=method):
            try:
                if scope["type"] == "http":
                    await self._http(scope, receive, send, request_id)
                else:
                    await self.app(scope, receive, send)
            finally:
                structlog.contextvars.unbind_contextvars("route", "user_id")

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The route template, not the path: a path can hold a capability token (/uploads/{token}).
            log.exception("request_failed", route=route_template(scope))
            status = 500
            if not response_started:
                await internal_error(Request(scope))(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            self.metrics.observe_request(scope["method"], route, status, seconds)
            level = "debug" if route in QUIET_ROUTES and status < 500 else "info"
            getattr(log, level)(
                "request_finished", route=route, status=status, duration_ms=round(seconds * 1000, 1)
            )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if _GOOD_REQUEST_ID.match(candidate):
                return candidate
            break
    return new_id("req")
