"""Users: an id and an email. A user is created the first time something names it, never by sign-up."""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

from fluxstudio.errors import Invalid
from fluxstudio.ids import new_id

#: The owner of everything made without naming a user: `fluxstudio up`'s token, `tokens create` without
#: --user. `.invalid` is reserved (RFC 2606), so this can never be someone's real address.
DEFAULT_EMAIL = "local@fluxstudio.invalid"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


@dataclass(frozen=True)
class User:
    id: str
    email: str


def normalize_email(email: str) -> str:
    """The stored form: trimmed and lowercased, so `Ann@X.org` and `ann@x.org` are one user."""
    value = email.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise Invalid("email must look like name@example.com")
    return value


async def ensure_user(pool: asyncpg.Pool, email: str) -> User:
    """The user with this email, created on first use. Two callers racing both get the same row."""
    email = normalize_email(email)
    row = await pool.fetchrow("SELECT id, email FROM users WHERE email = $1", email)
    if row is None:
        # A concurrent insert of the same email makes ours wait for its commit and then do nothing,
        # so the SELECT below, a new statement, sees the winner's row.
        row = await pool.fetchrow(
            "INSERT INTO users (id, email) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING"
            " RETURNING id, email",
            new_id("usr"),
            email,
        ) or await pool.fetchrow("SELECT id, email FROM users WHERE email = $1", email)
    return User(id=row["id"], email=row["email"])
