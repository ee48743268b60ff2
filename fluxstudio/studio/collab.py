"""Who may open which collaboration room: room names, their visibility, and short-lived room tokens.

A room is `asset:{id}` or `project:{id}`; a user sees it when they own the project (of the asset). Anyone
else's room, a room that does not exist and a malformed name look the same (`NotFound`), as on the API.

A room token lets a browser open one room without putting a long-lived API token in a URL. It needs no
table: it names the API token it was made with and is signed (HMAC-SHA256) with that token's stored hash,
a 256-bit value that never leaves the database. So it is checked with the same one-row lookup as an API
token, and revoking the API token revokes its room tokens at once. Format:
`rt_{api token id}.{expires, unix seconds}.{room, base64url}.{signature, base64url}`.
A room token is checked when a socket opens; an open socket outlives its expiry (as with any session),
but not the credential behind it: `still_valid` is asked again while the socket is open, and a revoked
API token closes it. The console has no API token: its room tokens name its session instead (`ses_…`),
signed with the session's stored hash, so signing out revokes them the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from fluxstudio.errors import Invalid, NotFound
from fluxstudio.ids import is_id
from fluxstudio.studio import tokens
from fluxstudio.studio.users import User

ROOM_TOKEN_PREFIX = "rt_"
ROOM_TOKEN_TTL_S = 15 * 60
ROOM_NAME_MAX = 100
_ROOM = re.compile(r"^(asset|project):([A-Za-z0-9_-]{1,80})$")
_TOKEN_MAX = 400
_UNKNOWN = "unknown, revoked or expired token"

_VISIBLE = {
    "project": "SELECT 1 FROM projects WHERE id = $1 AND user_id = $2",
    "asset": "SELECT 1 FROM assets a JOIN projects p ON p.id = a.project_id"
             " WHERE a.id = $1 AND p.user_id = $2",
}


@dataclass(frozen=True)
class RoomToken:
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class Visitor:
    """Who opened a socket; `room` is set for a room token, which opens that room only."""

    user: User
    room: str | None = None
    #: Which API token let the visitor in: ("id", token id) for a room token, ("token_hash", hash) else.
    credential: tuple[str, str] = ("id", "")


def parse_room(room: str) -> tuple[str, str]:
    """(kind, id) of a room name; Invalid for anything but `asset:{id}` or `project:{id}`."""
    match = _ROOM.match(room) if len(room) <= ROOM_NAME_MAX else None
    if match is None:
        raise Invalid("a room is named `asset:{id}` or `project:{id}`")
    return match[1], match[2]


async def check_room(db: asyncpg.Pool | asyncpg.Connection, visitor: Visitor, room: str) -> None:
    """Return if `visitor` may open `room`; NotFound (or Invalid for a malformed name) if not."""
    kind, object_id = parse_room(room)
    if visitor.room is not None and visitor.room != room:
        raise NotFound(f"this room token is for another room than {room!r}")
    if await db.fetchval(_VISIBLE[kind], object_id, visitor.user.id) is None:
        raise NotFound(f"no {kind} has the id {object_id!r}")


async def create_room_token(
    pool: asyncpg.Pool, api_token: str, room: str, *, ttl_s: int = ROOM_TOKEN_TTL_S
) -> RoomToken:
    """A token that opens `room` for `ttl_s` seconds, for the owner of the live API token `api_token`."""
    row = await _token_row(pool, "token_hash", tokens.hash_token(api_token))
    return await _room_token(pool, row, room, ttl_s)


async def create_session_room_token(
    pool: asyncpg.Pool, session_secret: str, room: str, *, ttl_s: int = ROOM_TOKEN_TTL_S
) -> RoomToken:
    """As `create_room_token`, for a console session (the secret of its cookie)."""
    row = await _session_row(pool, "session_hash", tokens.hash_token(session_secret))
    return await _room_token(pool, row, room, ttl_s)


async def _room_token(pool: asyncpg.Pool, row: asyncpg.Record | None, room: str, ttl_s: int) -> RoomToken:
    """Signed with the credential's stored hash, so revoking the credential voids every token made."""
    if row is None:
        raise NotFound(_UNKNOWN)
    await check_room(pool, Visitor(User(row["user_id"], row["email"])), room)
    expires = int(time.time()) + ttl_s
    signature = _sign(row["token_hash"], row["id"], expires, room)
    token = f"{ROOM_TOKEN_PREFIX}{row['id']}.{expires}.{_b64(room.encode())}.{signature}"
    return RoomToken(token, datetime.fromtimestamp(expires, UTC))


async def authenticate(pool: asyncpg.Pool, token: str) -> Visitor:
    """The visitor behind an API token or a room token; NotFound when it is unknown, revoked or expired."""
    if not token.startswith(ROOM_TOKEN_PREFIX):
        user = await tokens.authenticate(pool, token)
        return Visitor(user, credential=("token_hash", tokens.hash_token(token)))
    try:
        token_id, expires_text, room_b64, signature = token[len(ROOM_TOKEN_PREFIX):].split(".")
        expires, room = int(expires_text), base64.urlsafe_b64decode(room_b64 + "==").decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise NotFound(_UNKNOWN) from None
    # The id is checked for shape before it goes near the database (a NUL byte would fail the driver).
    console = is_id(token_id, "ses")  # a console session's room token, else an API token's
    if len(token) > _TOKEN_MAX or expires < time.time() or not (console or is_id(token_id, "tok")):
        raise NotFound(_UNKNOWN)
    if console:
        row = await _session_row(pool, "id", token_id)
    else:
        row = await _token_row(pool, "id", token_id)
    if row is None or not hmac.compare_digest(signature, _sign(row["token_hash"], token_id, expires, room)):
        raise NotFound(_UNKNOWN)
    return Visitor(User(row["user_id"], row["email"]), room, credential=("id", token_id))


async def still_valid(pool: asyncpg.Pool, visitor: Visitor) -> bool:
    """Whether the credential that let `visitor` in is still live: the API token not revoked, or, for a
    console room token (`rt_ses_…`), the session not signed out nor expired. A room token's own expiry is
    not checked again: it bounds when a socket may open, not how long it stays."""
    column, value = visitor.credential
    if value == "":
        return False
    if column == "id" and is_id(value, "ses"):
        return await _session_row(pool, "id", value) is not None
    return await _token_row(pool, column, value) is not None


async def _token_row(pool: asyncpg.Pool, column: str, value: str) -> asyncpg.Record | None:
    # `column` is one of two constants of this module, never input.
    return await pool.fetchrow(
        "SELECT t.id, t.token_hash, u.id AS user_id, u.email"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        f" WHERE t.{column} = $1 AND t.revoked_at IS NULL",
        value,
    )


async def _session_row(pool: asyncpg.Pool, column: str, value: str) -> asyncpg.Record | None:
    # `column` is one of two constants of this module, never input.
    return await pool.fetchrow(
        "SELECT s.id, s.session_hash AS token_hash, u.id AS user_id, u.email"
        " FROM web_sessions s JOIN users u ON u.id = s.user_id"
        f" WHERE s.{column} = $1 AND s.ended_at IS NULL AND s.expires_at > now()",
        value,
    )


def _sign(key: str, token_id: str, expires: int, room: str) -> str:
    message = f"{token_id}\n{expires}\n{room}".encode()
    return _b64(hmac.new(key.encode(), message, hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
