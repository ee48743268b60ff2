"""The request's way to the process's `Platform` (opened by the app factory, kept in `app.state`)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from fluxstudio.runtime.platform import Platform
from fluxstudio.studio.media_urls import MediaUrls


def platform_of(request: HTTPConnection) -> Platform:
    return request.app.state.platform


def public_base(request: HTTPConnection) -> str:
    """Where clients reach this API: PUBLIC_URL when set, never the request's Host header then."""
    return platform_of(request).settings.public_url or str(request.base_url).rstrip("/")


def media_urls(request: HTTPConnection) -> MediaUrls:
    """Playback URLs for this request: the public base if configured, else this API's own `/media`."""
    storage = platform_of(request).storage
    assert storage is not None
    return MediaUrls(storage, public_base(request) + "/media")
