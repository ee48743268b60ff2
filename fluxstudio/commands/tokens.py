"""`fluxstudio tokens create|list|revoke`: API tokens from the command line.

`create` prints the token alone on stdout so that `TOKEN=$(fluxstudio tokens create ci)` works; it is shown
once and only its hash is stored. Everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from fluxstudio.config import Settings
from fluxstudio.db.pool import create_pool
from fluxstudio.studio import tokens


@asynccontextmanager
async def _pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url.get(), min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


async def create(settings: Settings, args: argparse.Namespace) -> int:
    async with _pool(settings) as pool:
        info, plaintext = await tokens.create_token(pool, args.name, email=args.user)
    print(f"created token {info.id} ({info.name}) for {info.email}; it is shown once", file=sys.stderr)
    print(plaintext)
    return 0


async def list_(settings: Settings, args: argparse.Namespace) -> int:
    async with _pool(settings) as pool:
        items = await tokens.list_tokens(pool, email=args.user)
    if args.json:
        print(json.dumps([item.as_dict() for item in items], indent=2))
        return 0
    print(f"{'ID':<28} {'NAME':<20} {'USER':<32} {'CREATED':<20} {'LAST USED':<20} STATUS")
    for item in items:
        status = "revoked" if item.revoked_at else "active"
        print(
            f"{item.id:<28} {item.name[:20]:<20} {item.email[:32]:<32} {_when(item.created_at):<20} "
            f"{_when(item.last_used_at):<20} {status}"
        )
    return 0


async def revoke(settings: Settings, args: argparse.Namespace) -> int:
    async with _pool(settings) as pool:
        info = await tokens.revoke_token(pool, args.id, again_ok=False)  # Conflict: exit 1, one line
    print(f"revoked token {info.id} ({info.name})", file=sys.stderr)
    return 0


def _when(moment: object) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"  # type: ignore[attr-defined]
