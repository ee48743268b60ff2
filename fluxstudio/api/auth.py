"""Bearer-token authentication for `/api/v1`: `Authorization: Bearer <API token>` names the caller.

A missing, malformed, unknown or revoked token is the same 401 with `WWW-Authenticate: Bearer`, and the
same message, so a caller learns nothing about which tokens exist. Ownership is not checked here: every
studio operation takes the user and answers NotFound (404) for someone else's object.
"""

from __future__ import annotations

import structlog
from starlette.requests import Request

from fluxstudio.api.context import platform_of
from fluxstudio.api.problems import Unauthenticated
from fluxstudio.errors import NotFound
from fluxstudio.studio.tokens import authenticate
from fluxstudio.studio.users import User

_MESSAGE = (
    "send a valid API token as `Authorization: Bearer <token>` (create one with `fluxstudio tokens create`)"
)


async def require_user(request: Request) -> User:
    """The caller, or Unauthenticated. Binds the user id into the log context for the rest of the request."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(_MESSAGE)
    try:
        user = await authenticate(platform_of(request).pool, token.strip())
    except NotFound as exc:
        raise Unauthenticated(_MESSAGE) from exc
    structlog.contextvars.bind_contextvars(user_id=user.id)
    return user
