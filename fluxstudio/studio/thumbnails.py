"""Frames on demand: `thumbnail(...)` → JPEG bytes of an asset's frame at a time, at a width.

Cached in storage under the asset's private folder, keyed by (asset, frame number, width), so two
times inside one frame share one object and a repeated request costs one storage read. The source is
read in place on local storage; from S3 it is fetched once per process into a local cache folder.

    jpeg = await thumbnail(platform, user, asset_id, time_s=12.5, width=320)

`platform` is whatever one process holds open (the API's Platform has these attributes): pool, storage,
tools and a scratch folder. REST (`GET /assets/{id}/thumbnail`) and MCP (`get_frame`) both call this.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
from pathlib import Path, PurePosixPath
from typing import Protocol

import asyncpg

from fluxstudio.errors import Conflict, Invalid, NotFound
from fluxstudio.log import get_logger
from fluxstudio.media import Tools
from fluxstudio.media.frames import extract_frame, frame_index, frame_time
from fluxstudio.storage import Storage
from fluxstudio.studio.assets import asset_row
from fluxstudio.studio.users import User

DEFAULT_WIDTH = 640
MIN_WIDTH = 16

log = get_logger()


class Holds(Protocol):
    """What a process holds open that a thumbnail needs (the API's Platform, a worker's context)."""

    pool: asyncpg.Pool | None
    storage: Storage | None
    tools: Tools | None
    upload_dir: Path


def cache_key(asset_id: str, frame: int, width: int) -> str:
    # Under sources/: private (never served by /media) and deleted with the asset.
    return f"sources/{asset_id}/thumbnails/{frame}-{width}.jpg"


async def thumbnail(held: Holds, user: User, asset_id: str, time_s: float, width: int | None = None) -> bytes:
    """The frame at `time_s` seconds (within one frame) as a JPEG `width` pixels wide (default 640, at
    least 16, capped at the source width). Invalid for a time outside [0, duration); Conflict for an
    asset without video; NotFound for another user's asset."""
    assert held.pool is not None and held.storage is not None and held.tools is not None
    record = await asset_row(held.pool, user, asset_id)
    info = record.media_info()
    if info is None or not info.has_video or not info.width:
        raise Conflict("the asset has no video to take a frame from")
    if not isinstance(time_s, int | float) or not math.isfinite(time_s) or not 0 <= time_s < info.duration_s:
        raise Invalid(f"time must be from 0 to less than the duration, {info.duration_s:g} s")
    width = DEFAULT_WIDTH if width is None else width
    if width < MIN_WIDTH:
        raise Invalid(f"width must be at least {MIN_WIDTH}")
    width = min(width, info.width)
    frame = frame_index(time_s, info.fps)
    key = cache_key(asset_id, frame, width)
    try:
        return await _read(held.storage, key)
    except NotFound:
        pass
    if record.source_key is None:
        raise Conflict("the asset has no stored source")
    source = await _local_source(held, record.source_key)
    data = await extract_frame(
        source, held.tools, time_s=frame_time(frame, info.fps), width=width, fps=info.fps,
        work_dir=held.upload_dir,
    )  # fmt: skip
    await held.storage.put(key, data, content_type="image/jpeg")
    log.info("thumbnail_made", asset_id=asset_id, frame=frame, width=width)
    return data


async def _read(storage: Storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.open(key)])


async def _local_source(held: Holds, key: str) -> Path:
    """A local path of the source: in place on local storage, else a per-process cached copy."""
    assert held.storage is not None
    in_place = held.storage.local_file(key)
    if in_place is not None:
        return in_place
    cached = held.upload_dir / "sources" / key.replace("/", "_")
    if cached.is_file():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{secrets.token_hex(6)}{PurePosixPath(key).suffix}")
    try:
        with partial.open("wb") as out:
            async for chunk in held.storage.open(key):
                await asyncio.to_thread(out.write, chunk)
        os.replace(partial, cached)
    finally:
        partial.unlink(missing_ok=True)
    return cached
