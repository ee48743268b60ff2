"""Where uploads and HLS outputs live: a local folder or an S3 bucket, behind one small interface.

    async with open_storage(settings) as storage:
        await storage.put_file("assets/a1/source", upload_path)
        async for chunk in storage.open("assets/a1/hls/j1/master.m3u8"):
            ...

This package knows nothing of assets, jobs or the database: keys in, bytes out. Which key layout the
product uses is decided in `fluxstudio/studio/`.
"""

from __future__ import annotations

from fluxstudio.config import Settings
from fluxstudio.errors import Invalid
from fluxstudio.storage.base import ObjectInfo, Storage, check_key, check_prefix
from fluxstudio.storage.content import ObjectHeaders, headers_for
from fluxstudio.storage.local import LocalStorage
from fluxstudio.storage.s3 import S3Storage

__all__ = [
    "LocalStorage",
    "ObjectHeaders",
    "ObjectInfo",
    "S3Storage",
    "Storage",
    "check_key",
    "check_prefix",
    "headers_for",
    "open_storage",
]


def open_storage(settings: Settings, *, public_base_url: str | None = None) -> Storage:
    """The storage `settings.storage_url` names. Nothing connects until first use or `async with`.

    `public_base_url` (else `PUBLIC_MEDIA_URL`) points at the storage root; without either, `url()`
    answers None and the caller builds URLs itself (the API's own `/media` route for local storage).
    """
    base = public_base_url or settings.public_media_url
    if settings.s3 is not None:
        return S3Storage(settings.s3, public_base_url=base)
    media_dir = settings.media_dir
    if media_dir is None:
        raise Invalid("STORAGE_URL must be file:///abs/path or s3://bucket[/prefix]")
    return LocalStorage(media_dir, public_base_url=base)
