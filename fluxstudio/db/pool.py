"""Connections to PostgreSQL: the asyncpg pool every process shares, and single connections for migrations.

Both go through `connect_options`, so a DSN means the same thing everywhere: `postgresql://` and
`postgres://`, `?sslmode=require` (asyncpg reads it from the DSN and refuses to fall back to clear text),
`?host=/socket/dir` for a local socket. Failures to connect are translated here, once, into
`Unavailable`, whose message names host, port and database and never the password.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from fluxstudio.errors import Invalid, Unavailable

#: Seconds to wait for one connection (TCP, TLS and authentication) before PostgreSQL counts as down.
CONNECT_TIMEOUT = 10.0

#: What asyncpg raises when PostgreSQL cannot be reached or refuses us. ValueError (a DSN that asyncpg
#: cannot parse) is handled apart: retrying it cannot help.
CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def connect_options(
    *, connect_timeout: float = CONNECT_TIMEOUT, application_name: str = "fluxstudio"
) -> dict:
    """Keyword arguments for `asyncpg.connect` / `asyncpg.create_pool` shared by the pool and alembic."""
    return {
        # DigitalOcean's managed PostgreSQL sits behind PgBouncer in transaction mode: consecutive
        # transactions of one client may run on different server connections, where asyncpg's named,
        # cached prepared statements do not exist. With the cache off asyncpg uses unnamed statements.
        "statement_cache_size": 0,
        "timeout": connect_timeout,
        "server_settings": {"application_name": application_name},
    }


async def _set_codecs(connection: asyncpg.Connection) -> None:
    # Without this asyncpg hands back json and jsonb columns as str.
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_pool(
    database_url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    connect_timeout: float = CONNECT_TIMEOUT,
    application_name: str = "fluxstudio",
) -> asyncpg.Pool:
    """An open pool, with at least `min_size` connections made, so a bad URL fails here and not later."""
    pool = asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        init=_set_codecs,
        **connect_options(connect_timeout=connect_timeout, application_name=application_name),
    )
    try:
        return await pool
    except BaseException as exc:
        pool.terminate()
        error = translate_connect_error(exc, database_url)
        if error is exc:
            raise
        raise error from exc


async def connect(
    database_url: str, *, connect_timeout: float = CONNECT_TIMEOUT, application_name: str = "fluxstudio"
) -> asyncpg.Connection:
    """One connection with the pool's settings and codecs, for work that must not share a pool (alembic)."""
    options = connect_options(connect_timeout=connect_timeout, application_name=application_name)
    try:
        connection = await asyncpg.connect(database_url, **options)
    except Exception as exc:
        error = translate_connect_error(exc, database_url)
        if error is exc:
            raise
        raise error from exc
    await _set_codecs(connection)
    return connection


def translate_connect_error(exc: BaseException, database_url: str) -> BaseException:
    """Our error for a failed connection attempt; anything unexpected (a cancellation) is returned as is."""
    where = describe(database_url)
    if isinstance(exc, ValueError):
        return Invalid(f"DATABASE_URL for {where} is malformed: {redact(str(exc), database_url)}")
    if isinstance(exc, TimeoutError):
        return Unavailable(f"PostgreSQL at {where} did not answer in time (connect timeout)")
    if isinstance(exc, CONNECT_ERRORS):
        reason = redact(str(exc), database_url) or type(exc).__name__
        return Unavailable(f"PostgreSQL at {where} is unavailable: {reason} ({type(exc).__name__})")
    return exc


def describe(database_url: str) -> str:
    """`host:port/database` of a DSN, safe to log: user and password are left out."""
    try:
        parts = urlsplit(database_url)
        query = parse_qs(parts.query)
        host = parts.hostname or query.get("host", ["localhost"])[0]
        port = parts.port or query.get("port", ["5432"])[0]
    except ValueError:
        return "an unparseable address"
    database = unquote(parts.path.lstrip("/")) or query.get("dbname", ["(default database)"])[0]
    return f"{host}:{port}/{database}"


def redact(text: str, database_url: str) -> str:
    """`text` with the DSN's password removed, in case a driver message quotes it back."""
    try:
        parts = urlsplit(database_url)
        passwords = [parts.password or "", *parse_qs(parts.query).get("password", [])]
    except ValueError:
        # Too broken to find the password in: show nothing of the driver's message.
        return "(message withheld)"
    candidates = {p for p in passwords if p} | {unquote(p) for p in passwords if p}
    for secret in sorted(candidates, key=len, reverse=True):
        text = text.replace(secret, "**********")
    return text
