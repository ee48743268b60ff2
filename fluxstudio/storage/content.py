"""Content type and Cache-Control of a stored object, decided from its key alone.

One function for both storages, so an object served from a local folder (`/media`) and the same object
served from S3 or a CDN carry the same headers. It relies on the names ffmpeg's HLS muxer gives its
outputs: the master playlist is `master.m3u8` (or `master*.m3u8`), init segments are `init*.mp4`.

Why these lifetimes: segments, posters, storyboards and downloads never change (a new transcode writes
under a new job prefix), so caches may keep them for a year; media playlists grow while their job runs
(watch while transcoding: EVENT playlists), so they may be kept about as long as a player waits between
reloads; the master playlist is the one name a player starts from, so it stays short in case an asset
is transcoded again or deleted. Anything else (uploaded
sources, JSON, thumbnails) is not meant for shared caches at all.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from posixpath import basename, splitext

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=60"
LIVE = "public, max-age=1"
NO_CACHE = "no-cache"

HLS_PLAYLIST = "application/vnd.apple.mpegurl"

#: Types that `mimetypes` gets wrong or does not know on every platform.
_TYPES = {
    ".m3u8": HLS_PLAYLIST,
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".vtt": "text/vtt",
    ".json": "application/json",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}

#: What a job writes beside its streams (media/extras.py), unchanging under its job prefix.
_EXTRAS = {"poster.jpg", "storyboard.jpg", "download.mp4", "download.m4a"}

#: Extensions that are HLS segments whatever their name.
_SEGMENTS = {".ts", ".m4s", ".aac", ".vtt"}

DEFAULT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class ObjectHeaders:
    content_type: str
    cache_control: str


def headers_for(key: str) -> ObjectHeaders:
    """The Content-Type and Cache-Control an object stored under `key` is served with."""
    name = basename(key).lower()
    ext = splitext(name)[1]
    content_type = _TYPES.get(ext) or mimetypes.guess_type(name, strict=False)[0] or DEFAULT_TYPE
    if ext == ".m3u8":
        cache = SHORT if name.startswith("master") else LIVE
    elif ext in _SEGMENTS or (ext == ".mp4" and name.startswith("init")) or name in _EXTRAS:
        cache = IMMUTABLE
    else:
        cache = NO_CACHE
    return ObjectHeaders(content_type, cache)
