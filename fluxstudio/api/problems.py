"""Every error the API answers is an RFC 9457 problem: `application/problem+json` with
`{type, title, status, detail}`, plus `code` (the same word as the error's `code`) and `request_id`.

This module is the one place where the product's errors become HTTP status codes. What it must not do:
show a stack trace, an SQL statement or a secret to a client. Unexpected exceptions never reach the
handlers here: `middleware.py` logs them once, with the request id, and answers a plain 500 problem.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import asyncpg
import pydantic
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from fluxstudio.errors import (
    Conflict,
    EmptyUpload,
    FluxError,
    Forbidden,
    Gone,
    Invalid,
    InvalidField,
    MediaError,
    NotFound,
    TooLarge,
    Unavailable,
    UnreadableMedia,
)
from fluxstudio.log import get_logger

PROBLEM_JSON = "application/problem+json"
#: Problem types are URNs: stable identifiers that need no web page of ours to exist.
TYPE_PREFIX = "urn:fluxstudio:problem:"
#: Seconds a client should wait before retrying a 503.
RETRY_AFTER_S = 5

log = get_logger()


class Unauthenticated(FluxError):
    """No bearer token, or one that is unknown or revoked (401). Only the API has this notion."""

    code = "unauthenticated"


class MalformedRequest(Invalid):
    """The request cannot be parsed at all (not JSON, a broken multipart body): 400, not 422."""

    code = "malformed_request"


class PreconditionFailed(Invalid):
    """A protocol version the server does not speak (tus's `Tus-Resumable`): 412."""

    code = "precondition_failed"


class UnsupportedMediaType(Invalid):
    """A body of a content type this route does not take (a tus PATCH): 415."""

    code = "unsupported_media_type"


#: Most specific first: the first class an error is an instance of decides its status.
STATUS_OF: tuple[tuple[type[FluxError], int], ...] = (
    (Unauthenticated, 401),
    (EmptyUpload, 400),
    (MalformedRequest, 400),
    (PreconditionFailed, 412),
    (UnsupportedMediaType, 415),
    (TooLarge, 413),
    (UnreadableMedia, 422),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Forbidden, 403),
    (Invalid, 422),
    (Gone, 410),
    (Unavailable, 503),
    (MediaError, 503),  # ffmpeg failed for a reason other than the input: a retry may succeed
)

#: Codes of routing errors, which carry no FluxError.
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "malformed_request", 413: "too_large"}

#: What asyncpg raises when PostgreSQL goes away under a request. The pool reconnects on the next acquire.
DATABASE_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


def status_of(exc: FluxError) -> int:
    for cls, status in STATUS_OF:
        if isinstance(exc, cls):
            return status
    return 500


def problem(
    request: Request | None,
    status: int,
    *,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response; `extra` members are added beside the standard ones (RFC 9457 §3.2)."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    request_id = request_id_of(request)
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def request_id_of(request: Request | None) -> str | None:
    if request is None:
        return None
    return request.scope.get("state", {}).get("request_id")


async def flux_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FluxError)
    status = status_of(exc)
    headers = None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="fluxstudio"'}
    elif status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        # Handled here, so logged here: once, without a traceback (the cause is outside this process).
        log.warning("request_unavailable", code=exc.code, error=str(exc))
    extra = {}
    if isinstance(exc, InvalidField):
        extra["errors"] = [{"loc": ["body", exc.field], "message": exc.reason, "type": "value_error"}]
    return problem(request, status, code=exc.code, detail=exc.message, headers=headers, **extra)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """404 and 405 from routing, and any HTTPException a library raises."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, "http_error")
    detail = exc.detail
    if status == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
        detail = f"nothing is served at {request.url.path}"
    elif status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    return problem(request, status, code=code, detail=detail, headers=exc.headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """A body or query that pydantic rejected: 422 with where and why, never the rejected value."""
    assert isinstance(exc, pydantic.ValidationError)
    errors = [
        {"loc": [str(part) for part in error["loc"]], "message": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]
    detail = "; ".join(f"{'.'.join(e['loc']) or 'body'}: {e['message']}" for e in errors)
    return problem(request, 422, code="invalid", detail=detail, errors=errors)


async def database_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("request_unavailable", dependency="postgresql", error=type(exc).__name__)
    return problem(
        request,
        503,
        code="unavailable",
        detail="PostgreSQL is unavailable; retry shortly",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def client_gone(request: Request, exc: Exception) -> JSONResponse:
    """The client hung up mid-body (an upload cancelled with Ctrl-C): nobody reads the answer."""
    log.info("client_disconnected")  # the route is in the log context; the path may hold a token
    return problem(request, 400, code="client_disconnected", detail="the client closed the connection")


def internal_error(request: Request | None) -> JSONResponse:
    return problem(
        request,
        500,
        code="internal",
        detail="an unexpected error occurred; it has been logged with this request id",
    )


EXCEPTION_HANDLERS = {
    FluxError: flux_error,
    HTTPException: http_error,
    pydantic.ValidationError: validation_error,
    ClientDisconnect: client_gone,
    **dict.fromkeys(DATABASE_DOWN, database_down),
}
