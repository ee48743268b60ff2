"""Authentication for `/api/v1`: `Authorization: Bearer <API token>` names the caller, or, for the
console, its session cookie (see `studio/sessions.py`).

A request authenticated by the cookie and meant to change something (any method but GET, HEAD and
OPTIONS) must also carry the session's CSRF token in `X-CSRF-Token`, and, when the browser says where it
comes from, an `Origin` of this server: another site's page can make the browser send the cookie, but
can neither read nor forge that token. The bearer path is unchanged and never looks at cookies.

A missing, malformed, unknown or revoked token is the same 401 with `WWW-Authenticate: Bearer`, and the
same message, so a caller learns nothing about which tokens exist. Ownership is not checked here: every
studio operation takes the user and answers NotFound (404) for someone else's object.
"""

from __future__ import annotations

import structlog
from starlette.requests import Request

from fluxstudio.api.context import platform_of
from fluxstudio.api.problems import Unauthenticated
from fluxstudio.errors import Forbidden, NotFound
from fluxstudio.studio.sessions import COOKIE_NAME, CSRF_HEADER, session_of
from fluxstudio.studio.tokens import authenticate
from fluxstudio.studio.users import User

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_MESSAGE = (
    "send a valid API token as `Authorization: Bearer <token>` (create one with `fluxstudio tokens create`)"
)


async def require_user(request: Request) -> User:
    """The caller, or Unauthenticated. Binds the user id into the log context for the rest of the request."""
    header = request.headers.get("authorization")
    cookie = request.cookies.get(COOKIE_NAME)
    if header is None and cookie:
        user = await _session_user(request, cookie)
        structlog.contextvars.bind_contextvars(user_id=user.id)
        return user
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(_MESSAGE)
    try:
        user = await authenticate(platform_of(request).pool, token.strip())
    except NotFound as exc:
        raise Unauthenticated(_MESSAGE) from exc
    structlog.contextvars.bind_contextvars(user_id=user.id)
    return user


async def _session_user(request: Request, secret: str) -> User:
    try:
        session = await session_of(platform_of(request).pool, secret)
    except NotFound as exc:
        raise Unauthenticated("your console session has ended; sign in again") from exc
    if request.method not in SAFE_METHODS:
        check_same_origin(request)
        if not session.csrf_matches(request.headers.get(CSRF_HEADER, "")):
            raise Forbidden("this request lacks the session's CSRF token (X-CSRF-Token); reload the page")
    return session.user


def check_same_origin(request: Request) -> None:
    """Forbidden when the browser says the request comes from a page of another origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not sent by every browser for same-origin requests; the CSRF token still decides
    # The host, not the scheme: behind a TLS proxy the browser says https while we see http.
    own = request.headers.get("host", request.url.netloc).lower()
    if origin.lower().partition("://")[2].rstrip("/") != own:
        raise Forbidden("a console request must come from the console's own origin")


def session_secret(request: Request) -> str | None:
    """The session cookie's value when the caller authenticated by cookie rather than a bearer token."""
    if request.headers.get("authorization") is not None:
        return None
    return request.cookies.get(COOKIE_NAME) or None
