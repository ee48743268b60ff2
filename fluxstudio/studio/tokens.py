"""API tokens: created for a user, shown once, stored only as a SHA-256 hash, revoked but never deleted.

A token is `fs_` followed by 43 URL-safe characters (256 random bits). Because it is that random, a plain
SHA-256 is enough to store it (no salt or slow hash: nothing to brute-force), and a lookup by hash through
a unique index is all authentication costs.

`authenticate` raises `NotFound` for a token that is unknown or revoked, with the same message for both
so that a caller learns nothing about which; the surfaces answer it with 401 (HTTP), close code 4401
(collab) or an MCP auth error, never 404. Revoked tokens stay listed, so an operator can see what was cut off.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from fluxstudio.errors import Conflict, Invalid, NotFound
from fluxstudio.ids import new_id
from fluxstudio.studio.users import DEFAULT_EMAIL, User, ensure_user, normalize_email

__all__ = [
    "DEFAULT_EMAIL",
    "TokenInfo",
    "User",
    "authenticate",
    "create_token",
    "ensure_user",
    "hash_token",
    "list_tokens",
    "revoke_token",
]

TOKEN_PREFIX = "fs_"
NAME_MAX = 100
#: Longer than any token we issue; anything longer is rejected before it reaches the database.
_PLAINTEXT_MAX = 200

_SELECT = """
    SELECT t.id, t.name, u.email, t.created_at, t.last_used_at, t.revoked_at
    FROM api_tokens t JOIN users u ON u.id = t.user_id
"""


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token, at any time: never its hash, and its plaintext only at creation."""

    id: str
    name: str
    email: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def as_dict(self) -> dict[str, str | None]:
        """JSON-ready, times in RFC 3339."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise Invalid(f"a token name must be 1 to {NAME_MAX} characters")
    return name


def _info(row: asyncpg.Record) -> TokenInfo:
    return TokenInfo(**{field: row[field] for field in TokenInfo.__dataclass_fields__})


async def create_token(pool: asyncpg.Pool, name: str, *, email: str | None = None) -> tuple[TokenInfo, str]:
    """A new token for `email` (the default local user when None, created on first use if need be).

    Returns the token's details and its plaintext; the plaintext cannot be had again.
    """
    name = _check_name(name)
    user = await ensure_user(pool, email or DEFAULT_EMAIL)
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await pool.fetchrow(
        "INSERT INTO api_tokens (id, user_id, name, token_hash) VALUES ($1, $2, $3, $4)"
        " RETURNING id, name, $5::text AS email, created_at, last_used_at, revoked_at",
        new_id("tok"),
        user.id,
        name,
        hash_token(plaintext),
        user.email,
    )
    return _info(row), plaintext


async def list_tokens(pool: asyncpg.Pool, *, email: str | None = None) -> list[TokenInfo]:
    """Every user's tokens (an operator's view), or one user's; oldest first, revoked ones included."""
    if email is None:
        rows = await pool.fetch(_SELECT + " ORDER BY t.created_at, t.id")
    else:
        rows = await pool.fetch(
            _SELECT + " WHERE u.email = $1 ORDER BY t.created_at, t.id", normalize_email(email)
        )
    return [_info(row) for row in rows]


async def revoke_token(pool: asyncpg.Pool, token_id: str, *, again_ok: bool = True) -> TokenInfo:
    """Revoke a token at once. Revoking it again changes nothing and keeps the first revocation time;
    with `again_ok=False` it raises `Conflict` instead, so a command can say the token was revoked already."""
    row = await pool.fetchrow(
        """
        WITH before AS (SELECT revoked_at FROM api_tokens WHERE id = $1),
        revoked AS (
            UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
            RETURNING id, name, user_id, created_at, last_used_at, revoked_at
        )
        SELECT r.id, r.name, u.email, r.created_at, r.last_used_at, r.revoked_at,
               (SELECT revoked_at FROM before) IS NOT NULL AS was_revoked
        FROM revoked r JOIN users u ON u.id = r.user_id
        """,
        token_id,
    )
    if row is None:
        raise NotFound(f"no API token has the id {token_id!r}")
    info = _info(row)
    if row["was_revoked"] and not again_ok:
        raise Conflict(
            f"token {info.id} ({info.name}) was already revoked at {info.revoked_at:%Y-%m-%d %H:%M:%SZ}"
        )
    return info


async def token_named(pool: asyncpg.Pool, token_hash: str) -> TokenInfo:
    """The live token with this hash (an MCP caller's, to name the agent after it); NotFound if none."""
    row = await pool.fetchrow(_SELECT + " WHERE t.token_hash = $1 AND t.revoked_at IS NULL", token_hash)
    if row is None:
        raise NotFound("unknown or revoked API token")
    return _info(row)


async def authenticate(pool: asyncpg.Pool, plaintext: str) -> User:
    """The user a live token belongs to; `NotFound` when the token is unknown or revoked.

    `last_used_at` is written at most once a minute per token, so authenticating is a read, not a
    write, on almost every request.
    """
    if not plaintext or len(plaintext) > _PLAINTEXT_MAX:
        raise NotFound("unknown or revoked API token")
    row = await pool.fetchrow(
        """
        SELECT t.id, u.id AS user_id, u.email,
               t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute' AS stale
        FROM api_tokens t JOIN users u ON u.id = t.user_id
        WHERE t.token_hash = $1 AND t.revoked_at IS NULL
        """,
        hash_token(plaintext),
    )
    if row is None:
        raise NotFound("unknown or revoked API token")
    if row["stale"]:
        # The same condition again, so that concurrent requests write once between them.
        await pool.execute(
            "UPDATE api_tokens SET last_used_at = now() WHERE id = $1"
            " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            row["id"],
        )
    return User(id=row["user_id"], email=row["email"])
