"""`POST /api/v1/collab/tokens {room}`: a short-lived room token, so that a browser opens
`/collab/{room}?token=...` without a long-lived API token in its URLs (see `studio/collab.py`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from fluxstudio.api.auth import require_user, session_secret
from fluxstudio.api.bodies import read_model, respond
from fluxstudio.api.context import platform_of
from fluxstudio.studio import collab


class RoomTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: str = Field(
        min_length=1, max_length=collab.ROOM_NAME_MAX, description="`asset:{id}` or `project:{id}`"
    )


class RoomToken(BaseModel):
    """Pass `token` as `?token=` when opening the room's WebSocket; it opens that room only."""

    token: str
    expires_at: datetime


async def create_room_token(request: Request) -> Response:
    await require_user(request)  # 401 exactly as every other route
    body = await read_model(request, RoomTokenCreate)
    pool = platform_of(request).pool
    secret = session_secret(request)
    if secret is not None:  # the console, signed in with a session cookie
        grant = await collab.create_session_room_token(pool, secret, body.room)
    else:
        api_token = request.headers["authorization"].partition(" ")[2].strip()
        grant = await collab.create_room_token(pool, api_token, body.room)
    return respond(RoomToken(token=grant.token, expires_at=grant.expires_at), 201)
