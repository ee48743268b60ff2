"""API tokens on real PostgreSQL: shown once, stored as a hash, revocable, tied to users made on first use."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import asyncpg
import pytest

from fluxstudio.errors import Conflict, Invalid, NotFound
from fluxstudio.studio.tokens import (
    DEFAULT_EMAIL,
    authenticate,
    create_token,
    ensure_user,
    list_tokens,
    revoke_token,
)


def _email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


async def test_create_shows_the_plaintext_once_and_stores_only_its_hash(pool: asyncpg.Pool) -> None:
    email = _email()
    info, plaintext = await create_token(pool, "ci", email=email)
    assert plaintext.startswith("fs_") and len(plaintext) > 40
    assert (info.name, info.email, info.revoked_at, info.last_used_at) == ("ci", email, None, None)

    row = await pool.fetchrow("SELECT * FROM api_tokens WHERE id = $1", info.id)
    assert row["token_hash"] == hashlib.sha256(plaintext.encode()).hexdigest()
    assert all(plaintext not in str(value) for value in row.values())


async def test_list_shows_tokens_without_hashes(pool: asyncpg.Pool) -> None:
    email = _email()
    first, plain_first = await create_token(pool, "one", email=email)
    second, _ = await create_token(pool, "two", email=email)
    mine = await list_tokens(pool, email=email.upper())
    assert [t.id for t in mine] == [first.id, second.id]
    everyone = await list_tokens(pool)
    assert {first.id, second.id} <= {t.id for t in everyone}

    stored_hash = await pool.fetchval("SELECT token_hash FROM api_tokens WHERE id = $1", first.id)
    shown = repr(mine) + repr(everyone) + repr([t.as_dict() for t in mine])
    assert set(mine[0].as_dict()) == {"id", "name", "email", "created_at", "last_used_at", "revoked_at"}
    assert stored_hash not in shown and plain_first not in shown


async def test_authenticate_returns_the_owner(pool: asyncpg.Pool) -> None:
    email = _email()
    _, plaintext = await create_token(pool, "laptop", email=email)
    user = await authenticate(pool, plaintext)
    assert user.email == email
    assert user.id == await pool.fetchval("SELECT id FROM users WHERE email = $1", email)


@pytest.mark.parametrize("plaintext", ["fs_" + "x" * 43, "", "fs_" + "y" * 500])
async def test_unknown_tokens_fail(pool: asyncpg.Pool, plaintext: str) -> None:
    with pytest.raises(NotFound, match="unknown or revoked"):
        await authenticate(pool, plaintext)


async def test_revoked_tokens_fail_and_revoking_twice_is_harmless(pool: asyncpg.Pool) -> None:
    info, plaintext = await create_token(pool, "old", email=_email())
    revoked = await revoke_token(pool, info.id)
    assert revoked.revoked and revoked.id == info.id
    with pytest.raises(NotFound, match="unknown or revoked"):
        await authenticate(pool, plaintext)
    again = await revoke_token(pool, info.id)
    assert again.revoked_at == revoked.revoked_at
    with pytest.raises(Conflict, match="was already revoked"):
        await revoke_token(pool, info.id, again_ok=False)
    assert (await revoke_token(pool, info.id)).revoked_at == revoked.revoked_at
    with pytest.raises(NotFound):
        await revoke_token(pool, "tok_doesnotexist")


async def test_a_new_user_is_created_on_first_use(pool: asyncpg.Pool) -> None:
    email = _email()
    assert await pool.fetchval("SELECT count(*) FROM users WHERE email = $1", email) == 0
    first, _ = await create_token(pool, "a", email=email)
    second, _ = await create_token(pool, "b", email=f"  {email.upper()} ")
    assert first.email == second.email == email
    assert await pool.fetchval("SELECT count(*) FROM users WHERE email = $1", email) == 1


async def test_concurrent_first_uses_make_one_user(pool: asyncpg.Pool) -> None:
    email = _email()
    users = await asyncio.gather(*(ensure_user(pool, email) for _ in range(5)))
    assert len({user.id for user in users}) == 1


async def test_tokens_without_a_user_belong_to_the_default_user(pool: asyncpg.Pool) -> None:
    info, plaintext = await create_token(pool, "local")
    assert info.email == DEFAULT_EMAIL
    assert (await authenticate(pool, plaintext)).email == DEFAULT_EMAIL
    assert await pool.fetchval("SELECT count(*) FROM users WHERE email = $1", DEFAULT_EMAIL) == 1


async def test_last_used_at_is_written_at_most_once_a_minute(pool: asyncpg.Pool) -> None:
    info, plaintext = await create_token(pool, "busy", email=_email())
    last_used = "SELECT last_used_at FROM api_tokens WHERE id = $1"
    await authenticate(pool, plaintext)
    first = await pool.fetchval(last_used, info.id)
    assert first is not None
    await authenticate(pool, plaintext)
    assert await pool.fetchval(last_used, info.id) == first

    await pool.execute(
        "UPDATE api_tokens SET last_used_at = last_used_at - interval '2 minutes' WHERE id = $1", info.id
    )
    await authenticate(pool, plaintext)
    assert await pool.fetchval(last_used, info.id) > first
    [listed] = [t for t in await list_tokens(pool, email=info.email) if t.id == info.id]
    assert listed.last_used_at is not None


@pytest.mark.parametrize(("name", "email"), [("", None), ("   ", None), ("x" * 101, None), ("ok", "nobody")])
async def test_bad_names_and_emails_are_invalid(pool: asyncpg.Pool, name: str, email: str | None) -> None:
    with pytest.raises(Invalid):
        await create_token(pool, name, email=email)
