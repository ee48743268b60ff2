"""The connection pool on real PostgreSQL: codecs, DSN forms, and how failures to connect are reported."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from fluxstudio.db.pool import connect, create_pool, describe
from fluxstudio.errors import Unavailable

PASSWORD = "s3cret-Pa55word"
SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_pool_decodes_and_encodes_jsonb(pool: asyncpg.Pool) -> None:
    assert await pool.fetchval("""SELECT '{"a": [1, 2]}'::jsonb""") == {"a": [1, 2]}
    assert await pool.fetchval("SELECT $1::jsonb", {"b": None}) == {"b": None}
    assert await pool.fetchval("SELECT '[1]'::json") == [1]


async def test_single_connections_share_the_codecs(database_url: str) -> None:
    connection = await connect(database_url)
    try:
        assert await connection.fetchval("SELECT $1::jsonb", {"x": 1}) == {"x": 1}
    finally:
        await connection.close()


async def test_postgres_scheme_is_accepted(database_url: str) -> None:
    assert database_url.startswith("postgresql://")
    pool = await create_pool("postgres://" + database_url.removeprefix("postgresql://"), max_size=1)
    try:
        assert await pool.fetchval("SELECT current_database()") == urlsplit(database_url).path[1:]
    finally:
        await pool.close()


async def test_closed_port_is_unavailable_and_the_message_hides_the_password() -> None:
    port = _free_port()
    for password in (PASSWORD, "p%40ss%3Aword"):  # percent-encoded too: p@ss:word
        dsn = f"postgresql://fluxstudio:{password}@127.0.0.1:{port}/media"
        with pytest.raises(Unavailable) as caught:
            await create_pool(dsn, connect_timeout=5)
        message = str(caught.value)
        assert f"127.0.0.1:{port}/media" in message
        assert password not in message and "p@ss:word" not in message and "fluxstudio:" not in message
        assert isinstance(caught.value.__cause__, OSError)


async def test_a_missing_database_is_unavailable_and_named(database_url: str) -> None:
    missing = database_url.replace(urlsplit(database_url).path, "/fluxstudio_no_such_db", 1)
    with pytest.raises(Unavailable, match="fluxstudio_no_such_db") as caught:
        await create_pool(missing)
    assert isinstance(caught.value.__cause__, asyncpg.InvalidCatalogNameError)


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[int, asyncio.Queue[bytes]]]:
    """A TCP server that records what a client sends first and answers an SSLRequest with 'N',
    as a PostgreSQL server without SSL does; to anything else it says nothing at all."""
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(8)
        received.put_nowait(first)
        if first == SSL_REQUEST:
            writer.write(b"N")
            await writer.drain()
        received.put_nowait(await reader.read())  # whatever comes until the client hangs up
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], received


async def test_sslmode_require_refuses_a_server_without_ssl(silent_server) -> None:
    port, received = silent_server
    dsn = f"postgresql://fluxstudio:{PASSWORD}@127.0.0.1:{port}/media?sslmode=require"
    with pytest.raises(Unavailable) as caught:
        await create_pool(dsn, connect_timeout=5)
    assert "SSL" in str(caught.value) and PASSWORD not in str(caught.value)
    assert await asyncio.wait_for(received.get(), 5) == SSL_REQUEST
    # After the refusal the client hung up without sending its startup message in clear text.
    assert await asyncio.wait_for(received.get(), 5) == b""


async def test_sslmode_require_against_the_test_server(database_url: str) -> None:
    parts = urlsplit(database_url)
    if not parts.hostname:
        pytest.skip("the test PostgreSQL listens on a Unix socket only, where SSL does not apply")
    connection = await connect(database_url)
    try:
        ssl_on = await connection.fetchval("SHOW ssl")
    finally:
        await connection.close()
    if ssl_on == "on":
        pytest.skip("the test PostgreSQL has SSL on")
    with pytest.raises(Unavailable, match="SSL"):
        await create_pool(database_url + ("&" if parts.query else "?") + "sslmode=require")


async def test_a_server_that_never_answers_times_out(silent_server) -> None:
    port, _ = silent_server
    dsn = f"postgresql://fluxstudio:{PASSWORD}@127.0.0.1:{port}/media?sslmode=disable"
    with pytest.raises(Unavailable, match="did not answer in time") as caught:
        await create_pool(dsn, connect_timeout=0.5)
    assert PASSWORD not in str(caught.value)


def test_describe_names_the_place_and_not_the_credentials() -> None:
    assert describe(f"postgres://u:{PASSWORD}@db.example.com:25060/app?sslmode=require") == (
        "db.example.com:25060/app"
    )
    assert describe("postgresql://postgres:@/postgres?host=/tmp/pg") == "/tmp/pg:5432/postgres"


# The redis_url fixture (tests/fixtures/services.py) lives beside the database fixtures; check here that
# both clients the product uses accept the URL it hands out and reach the same database.


async def test_redis_url_works_with_redis_py_and_arq(redis_url: str) -> None:
    from arq.connections import RedisSettings
    from arq.connections import create_pool as create_arq_pool
    from redis.asyncio import from_url

    client = from_url(redis_url)
    arq = await create_arq_pool(RedisSettings.from_dsn(redis_url))
    try:
        await client.set("fluxstudio-tests:probe", "1")
        assert await arq.get("fluxstudio-tests:probe") == b"1"
        assert (await client.client_info())["db"] == (await arq.client_info())["db"]
    finally:
        await client.delete("fluxstudio-tests:probe")
        await client.aclose()
        await arq.aclose()
