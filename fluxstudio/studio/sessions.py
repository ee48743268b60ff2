"""Console sign-in: one-time sign-in codes (the link `fluxstudio up` prints) and browser sessions.

A browser never holds an API token: it trades a token or a code for a session, a random secret kept in
an HttpOnly cookie. Like API tokens, sessions and codes are 256 random bits stored only as SHA-256
hashes. The CSRF token the page sends back in a header on every state-changing request is an HMAC of the
session's secret: the server recomputes it from the cookie, every tab of a session shares it, and a page
of another origin, which cannot read the HttpOnly cookie, cannot make it. A code is used once and lives
ten minutes; a session lives `SESSION_TTL` and ends on sign-out (the row is marked ended, so a copied
cookie is dead too).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from fluxstudio.errors import Gone, NotFound
from fluxstudio.ids import new_id
from fluxstudio.studio.tokens import authenticate, hash_token
from fluxstudio.studio.users import DEFAULT_EMAIL, User, ensure_user

#: The cookie that carries a session's secret, and the header that carries its CSRF token.
COOKIE_NAME = "fluxstudio_session"
CSRF_HEADER = "x-csrf-token"
CODE_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(days=7)
#: Longer than anything we issue; longer input is refused before it reaches the database.
_SECRET_MAX = 200


def csrf_token(secret: str) -> str:
    """The CSRF token of the session whose cookie holds `secret`."""
    return hmac.new(secret.encode(), b"fluxstudio-csrf", "sha256").hexdigest()


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str

    def csrf_matches(self, presented: str) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode(), self.csrf.encode())


@dataclass(frozen=True)
class NewSession:
    """Shown once, at sign-in: the cookie's secret (and the page's CSRF token, derived from it)."""

    user: User
    secret: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.secret)


async def create_signin_code(pool: asyncpg.Pool, *, email: str | None = None) -> str:
    """A one-time code that signs `email` (the default local user) in; only its hash is stored."""
    user = await ensure_user(pool, email or DEFAULT_EMAIL)
    code = secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO signin_codes (id, user_id, code_hash, expires_at) VALUES ($1, $2, $3, now() + $4)",
        new_id("sic"),
        user.id,
        hash_token(code),
        CODE_TTL,
    )
    return code


async def sign_in_with_code(pool: asyncpg.Pool, code: str) -> NewSession:
    """Use the code (once: two tabs racing get one session between them); Gone when used or expired."""
    if not code or len(code) > _SECRET_MAX:
        raise Gone("this sign-in link is not valid; run `fluxstudio up` again for a new one")
    row = await pool.fetchrow(
        "UPDATE signin_codes c SET used_at = now() FROM users u WHERE c.code_hash = $1"
        " AND c.used_at IS NULL AND c.expires_at > now() AND u.id = c.user_id RETURNING u.id, u.email",
        hash_token(code),
    )
    if row is None:
        raise Gone("this sign-in link was already used or has expired; sign in with an API token")
    return await _start(pool, User(id=row["id"], email=row["email"]))


async def sign_in_with_token(pool: asyncpg.Pool, token: str) -> NewSession:
    """NotFound for an unknown or revoked API token (the same for both)."""
    return await _start(pool, await authenticate(pool, token.strip()))


async def _start(pool: asyncpg.Pool, user: User) -> NewSession:
    secret = secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO web_sessions (id, user_id, session_hash, expires_at) VALUES ($1, $2, $3, now() + $4)",
        new_id("ses"),
        user.id,
        hash_token(secret),
        SESSION_TTL,
    )
    return NewSession(user=user, secret=secret)


async def session_of(pool: asyncpg.Pool, secret: str) -> Session:
    """The live session with this secret; NotFound when unknown, ended or expired."""
    if not secret or len(secret) > _SECRET_MAX:
        raise NotFound("no session")
    row = await pool.fetchrow(
        "SELECT u.id, u.email FROM web_sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.session_hash = $1 AND s.ended_at IS NULL AND s.expires_at > now()",
        hash_token(secret),
    )
    if row is None:
        raise NotFound("no session")
    return Session(user=User(id=row["id"], email=row["email"]), csrf=csrf_token(secret))


async def end_session(pool: asyncpg.Pool, secret: str) -> None:
    """Sign out: the session is dead on every replica at once. Ending an ended session does nothing."""
    if secret and len(secret) <= _SECRET_MAX:
        await pool.execute(
            "UPDATE web_sessions SET ended_at = now() WHERE session_hash = $1 AND ended_at IS NULL",
            hash_token(secret),
        )
