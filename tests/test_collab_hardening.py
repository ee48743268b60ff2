"""Collab against an attacker, with real sockets: a room token carrying a NUL byte is 4401 (not 1013
naming an exception), an open socket is closed 4401 soon after its API token is revoked, or, for the
console's room token (`rt_ses_…`), soon after its session signs out (and not before), and text frames
are held to the message limit like binary ones."""

from __future__ import annotations

import asyncio
import base64
import time
from urllib.parse import quote

import asyncpg
from websockets.asyncio.client import connect

from fluxstudio.collab import CollabOptions, Limits
from fluxstudio.studio import sessions
from fluxstudio.studio.collab import create_session_room_token
from fluxstudio.studio.tokens import list_tokens, revoke_token
from tests.test_collab import new_owner
from tests.test_collab_limits import closed_with, raw_socket
from tests.test_collab_support import close_code, start_local_api

MAX_MESSAGE = 4096
RECHECK_S = 0.5
OPTIONS = CollabOptions(
    limits=Limits(max_message_bytes=MAX_MESSAGE), idle_s=0.3, flush_every_s=0.1, resync_every_s=1.0,
    recheck_s=RECHECK_S,
)  # fmt: skip


async def test_a_room_token_with_a_nul_byte_is_4401(api_env: dict[str, str], pool: asyncpg.Pool) -> None:
    api = await start_local_api(api_env, OPTIONS)
    try:
        ann = await new_owner(pool)
        room_b64 = base64.urlsafe_b64encode(ann.room.encode()).rstrip(b"=").decode()
        expires = int(time.time()) + 600
        for token_id in ("tok_\x00", "\x00", "tok_" + "A" * 21 + "\x00"):
            token = quote(f"rt_{token_id}.{expires}.{room_b64}.c2ln")
            code, received = await close_code(api.ws_url, ann.room, token)
            assert (code, received) == (4401, [])
        async with connect(f"{api.ws_url}/{ann.room}?token=rt_tok_%00.{expires}.{room_b64}.x") as ws:
            await closed_with(ws)
        assert ws.close_reason is not None and "Error" not in ws.close_reason
    finally:
        await api.stop()


async def test_an_open_socket_is_closed_4401_once_its_token_is_revoked(
    api_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    api = await start_local_api(api_env, OPTIONS)
    try:
        ann = await new_owner(pool)
        async with raw_socket(api.ws_url, ann.room, ann.token) as ws:
            await asyncio.sleep(RECHECK_S * 3)  # a few re-checks pass while the token is live
            assert ws.close_code is None
            token_id = (await list_tokens(pool, email=ann.user.email))[0].id
            await revoke_token(pool, token_id)
            revoked_at = time.monotonic()
            assert await closed_with(ws) == 4401
            assert time.monotonic() - revoked_at < RECHECK_S + 5
            assert "revoked" in (ws.close_reason or "")
    finally:
        await api.stop()


async def test_a_console_socket_stays_while_signed_in_and_closes_4401_on_sign_out(
    api_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    api = await start_local_api(api_env, OPTIONS)
    try:
        ann = await new_owner(pool)
        session = await sessions.sign_in_with_token(pool, ann.token)
        grant = await create_session_room_token(pool, session.secret, ann.room)
        assert grant.token.startswith("rt_ses_")
        async with raw_socket(api.ws_url, ann.room, grant.token) as ws:
            await asyncio.sleep(RECHECK_S * 4)  # several re-checks pass while the session is live
            assert ws.close_code is None
            await sessions.end_session(pool, session.secret)
            ended_at = time.monotonic()
            assert await closed_with(ws) == 4401
            assert time.monotonic() - ended_at < RECHECK_S + 5
            assert "signed out" in (ws.close_reason or "")
    finally:
        await api.stop()


async def test_text_frames_over_the_limit_close_1009(api_env: dict[str, str], pool: asyncpg.Pool) -> None:
    api = await start_local_api(api_env, OPTIONS)
    try:
        ann = await new_owner(pool)
        async with raw_socket(api.ws_url, ann.room, ann.token) as ws:
            await ws.send("small text is ignored")
            await ws.send("x" * (2 * MAX_MESSAGE))
            assert await closed_with(ws) == 1009
    finally:
        await api.stop()
