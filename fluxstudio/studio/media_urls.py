"""Public URLs of stored HLS objects, as a client should fetch them.

With a public base (`PUBLIC_MEDIA_URL`, a CDN or the bucket's own address) the storage builds the URL;
without one the objects are served by the API's own `/media` route, whose address only the request knows.
So the surface builds one `MediaUrls` per request and hands it to the domain, which stores keys, never
URLs: moving to a CDN later changes no row.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fluxstudio.storage import Storage, check_key


class MediaUrls:
    """`url(key)`: the storage's public URL of `key`, else `{media_base}/{key}`."""

    def __init__(self, storage: Storage, media_base: str) -> None:
        self._storage = storage
        self._base = media_base.rstrip("/")

    def __repr__(self) -> str:
        return f"MediaUrls(media_base={self._base!r})"

    def url(self, key: str) -> str:
        public = self._storage.url(key)
        if public is not None:
            return public
        return f"{self._base}/{quote(check_key(key), safe='/')}"

    def with_token(self, key: str, token: str) -> str:
        """The URL of `key` through this API's own `/media`, carrying a playback token: a signed asset's
        objects are checked (and on S3 presigned) by the API, never served by the public base."""
        return f"{self._base}/{quote(check_key(key), safe='/')}?{urlencode({'token': token})}"
