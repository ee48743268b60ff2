"""What every tool call needs: the platform, the caller, playback URLs, and errors an agent can read.

`studio_call(ctx)` gathers the first three from the request; `tool_errors` turns the product's errors
into MCP tool errors (`isError: true` with a clear message), once, for every tool, after `check_ids`
has refused a malformed `*_id` argument the way REST does (not found, without asking PostgreSQL).
Anything else is a crash: the SDK logs it with its traceback and tells the agent only that the tool failed.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import asyncpg
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from fluxstudio.errors import FluxError, NotFound
from fluxstudio.ids import is_id_param
from fluxstudio.mcp.auth import caller
from fluxstudio.studio.media_urls import MediaUrls
from fluxstudio.studio.users import User

if TYPE_CHECKING:  # a type only: surfaces do not import each other at run time
    from fluxstudio.runtime.platform import Platform

#: What asyncpg raises when PostgreSQL goes away under a call: retrying later may work.
_DATABASE_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class StudioCall:
    platform: Platform
    user: User
    urls: MediaUrls
    #: Where clients reach this API: PUBLIC_URL if set, else what this request was sent to.
    base_url: str

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.platform.pool is not None
        return self.platform.pool


def studio_call(ctx: Context) -> StudioCall:
    """The platform (the MCP server's lifespan state), the verified caller and this request's media URLs."""
    platform: Platform = ctx.request_context.lifespan_context
    assert platform.storage is not None
    request = ctx.request_context.request
    base = platform.settings.public_url or (str(request.base_url).rstrip("/") if request is not None else "")
    # Without PUBLIC_MEDIA_URL, playback URLs are this API's own /media, as the REST API answers them.
    return StudioCall(platform, caller(ctx), MediaUrls(platform.storage, base + "/media"), base)


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Wrap a tool so that NotFound, Conflict, Invalid, ... reach the agent as tool errors it can act on."""

    @functools.wraps(fn)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            check_ids(kwargs)
            return await fn(*args, **kwargs)
        except FluxError as exc:
            raise ToolError(f"{exc.code}: {exc.message}") from exc
        except _DATABASE_DOWN as exc:
            raise ToolError("unavailable: the database cannot be reached; retry in a few seconds") from exc

    return tool


def check_ids(arguments: dict[str, object]) -> None:
    """NotFound for an `*_id` argument that is not shaped like an id of its kind (`ids.is_id_param`)."""
    for name, value in arguments.items():
        if name.endswith("_id") and value is not None and not is_id_param(name, value):
            raise NotFound(f"no {name.removesuffix('_id')} has this id")
