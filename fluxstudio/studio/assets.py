"""Assets: uploads that ffmpeg could read, where their bytes live, and what they became.

An upload becomes an asset only after `media.probe` has read it (hostile input is refused there, under
the same guards as a transcode), so an asset row always has a readable source and a `media` summary.

Key layout:
    sources/{asset_id}/source{ext}   the upload as received (`source_key`): private, `/media` never serves it
    sources/{asset_id}/thumbnails/   frames made on demand (studio/thumbnails.py), private like the source
    hls/{asset_id}/{job_id}/...      a job's outputs (`jobs.output_prefix`): streams, poster, storyboard, MP4;
                                     public by their unguessable path unless the asset is `signed`
Deleting an asset deletes both folders.
The source key never contains the client's filename: a name such as `-i`, `%d.mp4` or `../../x` is only
ever shown back, never used as a path or an ffmpeg argument.
"""

from __future__ import annotations

import contextlib
import dataclasses
import posixpath
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import asyncpg

from fluxstudio.errors import Conflict, EmptyUpload, FluxError, Invalid, NotFound, TooLarge
from fluxstudio.ids import new_id
from fluxstudio.log import get_logger
from fluxstudio.media import MediaInfo, Tools, probe
from fluxstudio.queue import Queue
from fluxstudio.storage import Storage, headers_for
from fluxstudio.studio import jobs, webhooks
from fluxstudio.studio.media_urls import MediaUrls
from fluxstudio.studio.models import Asset, RenditionOut
from fluxstudio.studio.projects import OWNED_ASSETS, Db, get_project
from fluxstudio.studio.users import User

log = get_logger()

FILENAME_MAX = 200

# Probed container family -> (extensions a source of that family may keep, the one given otherwise).
# The family comes from the bytes, so a `.mp3` that is really an MP4 is stored as `.mp4`.
_FAMILIES: dict[str, tuple[frozenset[str], str]] = {
    "mov": (frozenset({".mp4", ".m4v", ".mov", ".m4a", ".3gp", ".3g2", ".mj2"}), ".mp4"),
    "matroska": (frozenset({".mkv", ".webm", ".mka"}), ".mkv"),
    "avi": (frozenset({".avi"}), ".avi"),
    "mpegts": (frozenset({".ts", ".mts", ".m2ts"}), ".ts"),
    "flv": (frozenset({".flv"}), ".flv"),
    "asf": (frozenset({".asf", ".wmv", ".wma"}), ".asf"),
    "ogg": (frozenset({".ogg", ".ogv", ".oga", ".opus"}), ".ogg"),
    "mpeg": (frozenset({".mpg", ".mpeg", ".vob"}), ".mpg"),
    "mp3": (frozenset({".mp3"}), ".mp3"),
    "aac": (frozenset({".aac"}), ".aac"),
    "wav": (frozenset({".wav"}), ".wav"),
    "flac": (frozenset({".flac"}), ".flac"),
}
_MIME = re.compile(r"^(audio|video)/[a-z0-9][a-z0-9.+-]{0,100}$")

_FIELDS = (
    "id", "project_id", "filename", "content_type", "size_bytes", "source_key", "status", "media",
    "playback_key", "created_at", "error",
    # playback (migration 0004)
    "playable", "poster_key", "storyboard_key", "mp4_key", "playback_policy",
)  # fmt: skip
_COLUMNS = ", ".join("a." + name for name in _FIELDS)


@dataclass(frozen=True)
class AssetRecord:
    """An asset as the domain and the workers need it: with its private keys, which the API never shows."""

    id: str
    project_id: str
    filename: str
    content_type: str | None
    size_bytes: int
    source_key: str | None
    status: str
    media: dict[str, Any] | None
    playback_key: str | None
    created_at: datetime
    playable: bool = False
    poster_key: str | None = None
    storyboard_key: str | None = None
    mp4_key: str | None = None
    playback_policy: str = "public"
    error: dict[str, Any] | None = None

    def media_info(self) -> MediaInfo | None:
        """The full probe result, for planning a ladder; the row keeps every MediaInfo field."""
        if self.media is None:
            return None
        return MediaInfo.from_stored(self.media)


def source_key(asset_id: str, ext: str) -> str:
    return f"sources/{asset_id}/source{ext}"


# -- filenames --------------------------------------------------------------------------------------


def clean_filename(name: str | None) -> str:
    """The name an upload is shown under: no folders, no control or invisible characters, not too long.

    Invalid when nothing is left. The result is display text only; no key or path is built from it.
    """
    value = unicodedata.normalize("NFC", name or "")
    value = value.replace("\\", "/").rsplit("/", 1)[-1]  # a browser may send C:\Users\me\clip.mp4
    # Tabs and newlines become spaces; other control and invisible characters (bidi overrides that make
    # `evil\u202egnp.mp4` look like `evilmp4.png`) are dropped.
    value = "".join(" " if c.isspace() else c for c in value)
    value = "".join(c for c in value if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    value = " ".join(value.split())
    if not value.strip("."):
        raise Invalid("a filename needs a character other than '.', '/', space or a control character")
    if len(value) > FILENAME_MAX:
        stem, ext = posixpath.splitext(value)
        ext = ext if len(ext) <= 16 else ""
        value = stem[: FILENAME_MAX - len(ext)].rstrip() + ext
    return value


def source_extension(filename: str, info: MediaInfo) -> str:
    """The source's extension: the client's if it fits what the bytes are, else the family's own."""
    family = info.format_name.split(",", 1)[0]
    if family not in _FAMILIES:
        return ""
    allowed, default = _FAMILIES[family]
    ext = PurePosixPath(filename).suffix.lower()
    return ext if ext in allowed else default


def _content_type(declared: str | None, ext: str) -> str | None:
    derived = headers_for("source" + ext).content_type if ext else None
    if derived and derived.split("/")[0] in ("audio", "video"):
        return derived
    declared = (declared or "").split(";", 1)[0].strip().lower()
    return declared if _MIME.match(declared) else None


def _checked_size(upload: Path, size: int, max_bytes: int | None) -> int:
    try:
        actual = upload.stat().st_size
    except OSError as exc:
        raise Invalid("the uploaded file cannot be read") from exc
    if actual != size:
        raise Invalid(f"the upload holds {actual} bytes, not the {size} announced")
    if actual == 0:
        raise EmptyUpload("the upload is empty")
    if max_bytes is not None and actual > max_bytes:
        raise TooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
    return actual


# -- operations -------------------------------------------------------------------------------------


async def ingest(
    pool: asyncpg.Pool,
    storage: Storage,
    tools: Tools,
    user: User,
    project_id: str,
    upload: Path,
    *,
    filename: str,
    content_type: str | None,
    size: int,
    max_bytes: int | None = None,
) -> Asset:
    """Accept the file at `upload` (the caller's temporary file, left in place) as a new asset.

    Nothing is kept when any step fails: probing comes first, and an object stored before a failed
    insert is deleted again.
    """
    await get_project(pool, user, project_id)  # before a probe is spent on someone else's project
    size = _checked_size(upload, size, max_bytes)
    name = clean_filename(filename)
    info = await probe(upload, tools)
    ext = source_extension(name, info)
    asset_id = new_id("ast")
    key = source_key(asset_id, ext)
    try:
        await storage.put_file(key, upload)
        row = await pool.fetchrow(
            f"""
            INSERT INTO assets (id, project_id, filename, content_type, size_bytes, source_key, status, media)
            SELECT $1, p.id, $3, $4, $5, $6, 'uploaded', $7::jsonb FROM projects p
            WHERE p.id = $2 AND p.user_id = $8
            RETURNING {", ".join(_FIELDS)}
            """,
            asset_id,
            project_id,
            name,
            _content_type(content_type, ext),
            size,
            key,
            dataclasses.asdict(info),
            user.id,
        )
        if row is None:  # the project was deleted while we probed
            raise NotFound(f"no project has the id {project_id[:64]!r}")
    except BaseException:
        await _forget_objects(storage, [f"sources/{asset_id}/"], asset_id)
        raise
    log.info("asset_ingested", asset_id=asset_id, project_id=project_id, size_bytes=size, source_key=key)
    return _asset(_record(row), [], None)


async def ingest_into(
    pool: asyncpg.Pool,
    storage: Storage,
    tools: Tools,
    asset_id: str,
    upload: Path,
    *,
    content_type: str | None,
    size: int,
    max_bytes: int | None = None,
) -> Asset | None:
    """`ingest` for an asset row that already exists (`importing`, from a URL import): the same checks,
    probe and key layout, then the row becomes `uploaded`. None if the asset went away meanwhile."""
    row = await pool.fetchrow("SELECT filename FROM assets WHERE id = $1 AND status = 'importing'", asset_id)
    if row is None:
        return None
    size = _checked_size(upload, size, max_bytes)
    info = await probe(upload, tools)
    ext = source_extension(row["filename"], info)
    key = source_key(asset_id, ext)
    try:
        await storage.put_file(key, upload)
        updated = await pool.fetchrow(
            f"UPDATE assets SET status = 'uploaded', content_type = $2, size_bytes = $3, source_key = $4,"
            f" media = $5::jsonb, error = NULL, updated_at = now() WHERE id = $1 AND status = 'importing'"
            f" RETURNING {', '.join(_FIELDS)}",
            asset_id,
            _content_type(content_type, ext),
            size,
            key,
            dataclasses.asdict(info),
        )
        if updated is None:
            raise NotFound(f"no asset has the id {asset_id[:64]!r}")
    except BaseException:
        await _forget_objects(storage, [f"sources/{asset_id}/"], asset_id)
        raise
    log.info("asset_imported", asset_id=asset_id, size_bytes=size, source_key=key)
    return _asset(_record(updated), [], None)


async def asset_row(db: Db, user: User, asset_id: str) -> AssetRecord:
    """The user's asset with its private keys (for jobs and workers); NotFound for anyone else's."""
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM {OWNED_ASSETS} WHERE a.id = $1 AND p.user_id = $2", asset_id, user.id
    )
    if row is None:
        raise NotFound(f"no asset has the id {asset_id[:64]!r}")
    return _record(row)


async def get_asset(pool: Db, user: User, asset_id: str, urls: MediaUrls) -> Asset:
    record = await asset_row(pool, user, asset_id)
    renditions = await _renditions(pool, [record])
    return _asset(record, renditions.get(record.id, []), urls)


async def list_assets(pool: Db, user: User, project_id: str, urls: MediaUrls) -> list[Asset]:
    """The project's assets, oldest first; NotFound when the project is not the user's."""
    await get_project(pool, user, project_id)
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM {OWNED_ASSETS} WHERE a.project_id = $1 AND p.user_id = $2"
        " ORDER BY a.created_at, a.id",
        project_id,
        user.id,
    )
    records = [_record(row) for row in rows]
    renditions = await _renditions(pool, records)
    return [_asset(r, renditions.get(r.id, []), urls) for r in records]


async def delete_asset(
    pool: asyncpg.Pool, storage: Storage, queue: Queue | None, user: User, asset_id: str
) -> None:
    """Cancel the asset's unfinished jobs, delete its stored objects, then its row (jobs and renditions go
    with it). Objects go before the row, so a failure half-way leaves a row to delete again, not orphans.
    """
    await asset_row(pool, user, asset_id)
    await _cancel_unfinished_jobs(pool, queue, user, asset_id)
    # Every job writes under hls/{asset_id}/ (jobs.output_prefix), so two folders hold all of an asset.
    folders = (f"sources/{asset_id}/", f"hls/{asset_id}/")
    for folder in folders:
        await storage.delete_prefix(folder)
    async with pool.acquire() as connection, connection.transaction():
        data = await event_data(connection, asset_id)
        deleted = await connection.fetchval(
            "DELETE FROM assets a USING projects p WHERE a.id = $1 AND p.id = a.project_id AND p.user_id = $2"
            " RETURNING true",
            asset_id,
            user.id,
        )
        if deleted:
            await webhooks.record_event(connection, user.id, "asset.deleted", data)
    log.info("asset_deleted", asset_id=asset_id)


async def event_data(db: Db, asset_id: str) -> dict[str, Any]:
    """The asset as a webhook event carries it (no owner check: for the domain's own writers).

    Playback URLs are null here: without a request the address of the API's own `/media` is unknown,
    so a receiver reads them with `GET /assets/{id}`; `status`, `media` and `error` are all there.
    """
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM assets a WHERE a.id = $1", asset_id)
    if row is None:
        raise NotFound(f"no asset has the id {asset_id[:64]!r}")
    return _asset(_record(row), [], None).model_dump(mode="json")


# -- helpers ----------------------------------------------------------------------------------------


async def _cancel_unfinished_jobs(pool: asyncpg.Pool, queue: Queue | None, user: User, asset_id: str) -> None:
    rows = await pool.fetch(
        "SELECT id FROM jobs WHERE asset_id = $1 AND status IN ('queued', 'running') ORDER BY created_at",
        asset_id,
    )
    for row in rows:
        with contextlib.suppress(Conflict):  # it finished meanwhile: nothing left to stop
            await jobs.cancel_job(pool, queue, user, row["id"])


async def _forget_objects(storage: Storage, folders: list[str], asset_id: str) -> None:
    """Best-effort cleanup after a failed ingest; the caller's error is the one that matters."""
    for folder in folders:
        try:
            await storage.delete_prefix(folder)
        except (FluxError, OSError) as exc:
            log.warning("asset_cleanup_failed", asset_id=asset_id, folder=folder, error=str(exc))


def _record(row: asyncpg.Record) -> AssetRecord:
    return AssetRecord(**dict(row))


async def _renditions(db: Db, records: list[AssetRecord]) -> dict[str, list[asyncpg.Record]]:
    """The renditions of each ready asset's latest succeeded job: the one its playback key points into."""
    ready = [r.id for r in records if r.status == "ready" and r.playback_key]
    if not ready:
        return {}
    rows = await db.fetch(
        """
        SELECT r.asset_id, r.name, r.width, r.height, r.bandwidth, r.playlist_key
        FROM renditions r
        WHERE r.asset_id = ANY($1::text[]) AND r.job_id = (
            SELECT j.id FROM jobs j WHERE j.asset_id = r.asset_id AND j.status = 'succeeded'
            ORDER BY j.finished_at DESC NULLS LAST, j.created_at DESC, j.id DESC LIMIT 1
        )
        ORDER BY r.asset_id, r.height DESC NULLS LAST, r.bandwidth DESC NULLS LAST, r.name
        """,
        ready,
    )
    grouped: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        grouped.setdefault(row["asset_id"], []).append(row)
    return grouped


def _asset(record: AssetRecord, renditions: list[asyncpg.Record], urls: MediaUrls | None) -> Asset:
    # Ready means playable; before that only while a running job's stream can be played.
    playable = (record.playable or record.status == "ready") and record.playback_key is not None
    # A signed asset's URLs are only handed out with a token (studio/playback.py).
    public = urls is not None and record.playback_policy == "public"

    def url(key: str | None) -> str | None:
        return urls.url(key) if public and key is not None and urls is not None else None

    return Asset(
        id=record.id,
        project_id=record.project_id,
        filename=record.filename,
        content_type=record.content_type,
        size_bytes=record.size_bytes,
        status=record.status,  # type: ignore[arg-type]
        media=record.media,  # type: ignore[arg-type]  # validated into MediaSummary; extra fields dropped
        renditions=[
            RenditionOut(
                name=r["name"],
                width=r["width"],
                height=r["height"],
                bandwidth=r["bandwidth"],
                playlist_url=url(r["playlist_key"]),
            )
            for r in renditions
        ]
        if playable
        else [],
        playback_url=url(record.playback_key) if playable else None,
        poster_url=url(record.poster_key),
        storyboard_url=url(record.storyboard_key),
        mp4_url=url(record.mp4_key),
        playable=playable,
        playback_policy=record.playback_policy,  # type: ignore[arg-type]
        created_at=record.created_at,
        error=record.error if record.status == "failed" else None,  # type: ignore[arg-type]
    )
