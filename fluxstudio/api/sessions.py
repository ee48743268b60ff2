"""`/api/v1/session`: the console's sign-in, who is signed in, and sign-out (see `studio/sessions.py`).

`POST {token}` or `POST {code}` (the one-time link `fluxstudio up` prints) answers the CSRF token and
sets the session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's request sends
it), Secure over HTTPS. `GET` gives a reloaded page its user and CSRF token back. `DELETE` ends the
session on the server and clears the cookie.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fluxstudio.api.auth import check_same_origin, require_user, session_secret
from fluxstudio.api.bodies import read_model
from fluxstudio.api.context import platform_of
from fluxstudio.api.problems import Unauthenticated
from fluxstudio.errors import NotFound
from fluxstudio.studio import sessions


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(default=None, max_length=200, description="an API token")
    code: str | None = Field(default=None, max_length=200, description="a one-time sign-in code")

    @model_validator(mode="after")
    def _one(self) -> SessionCreate:
        if (self.token is None) == (self.code is None):
            raise ValueError("send either `token` or `code`")
        return self


class SessionOut(BaseModel):
    """Send `csrf` as `X-CSRF-Token` on every request that changes something."""

    user: dict[str, str]
    csrf: str


def _out(user_id: str, email: str, csrf: str) -> dict[str, object]:
    return SessionOut(user={"id": user_id, "email": email}, csrf=csrf).model_dump()


async def create_session(request: Request) -> Response:
    check_same_origin(request)
    body = await read_model(request, SessionCreate)
    pool = platform_of(request).pool
    if body.code is not None:
        new = await sessions.sign_in_with_code(pool, body.code)
    else:
        try:
            new = await sessions.sign_in_with_token(pool, body.token or "")
        except NotFound as exc:
            raise Unauthenticated("that API token is unknown or revoked") from exc
    response = JSONResponse(_out(new.user.id, new.user.email, new.csrf), status_code=201)
    response.set_cookie(
        sessions.COOKIE_NAME,
        new.secret,
        max_age=int(sessions.SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def get_session(request: Request) -> Response:
    secret = session_secret(request)
    if secret is None:
        raise Unauthenticated("not signed in")
    user = await require_user(request)
    return JSONResponse(_out(user.id, user.email, sessions.csrf_token(secret)))


async def delete_session(request: Request) -> Response:
    secret = session_secret(request)
    if secret is None:
        raise Unauthenticated("not signed in")
    await require_user(request)  # a cookie-authenticated DELETE: CSRF-checked like any other
    await sessions.end_session(platform_of(request).pool, secret)
    response = Response(status_code=204)
    response.delete_cookie(sessions.COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response
