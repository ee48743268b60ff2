"""The one rule that gives every stored object its Content-Type and Cache-Control."""

from __future__ import annotations

import pytest

from fluxstudio.storage.content import IMMUTABLE, LIVE, NO_CACHE, SHORT, headers_for


@pytest.mark.parametrize(
    ("key", "content_type", "cache_control"),
    [
        ("a/hls/j1/master.m3u8", "application/vnd.apple.mpegurl", SHORT),
        ("a/hls/j1/MASTER.M3U8", "application/vnd.apple.mpegurl", SHORT),
        ("a/hls/j1/720p/index.m3u8", "application/vnd.apple.mpegurl", LIVE),
        ("a/hls/j1/poster.jpg", "image/jpeg", IMMUTABLE),
        ("a/hls/j1/storyboard.vtt", "text/vtt", IMMUTABLE),
        ("a/hls/j1/720p/seg_00001.ts", "video/mp2t", IMMUTABLE),
        ("a/hls/j1/720p/seg_00001.m4s", "video/iso.segment", IMMUTABLE),
        ("a/hls/j1/720p/init.mp4", "video/mp4", IMMUTABLE),
        ("a/hls/j1/init_2.mp4", "video/mp4", IMMUTABLE),
        ("a/hls/j1/audio/seg_1.aac", "audio/aac", IMMUTABLE),
        ("a/hls/j1/subs/seg_1.vtt", "text/vtt", IMMUTABLE),
        ("a/source.mp4", "video/mp4", NO_CACHE),
        ("a/source.mov", "video/quicktime", NO_CACHE),
        ("a/probe.json", "application/json", NO_CACHE),
        ("a/thumb.jpg", "image/jpeg", NO_CACHE),
        ("a/source", "application/octet-stream", NO_CACHE),
        ("a/weird.zzz-unknown", "application/octet-stream", NO_CACHE),
    ],
)
def test_headers_follow_from_the_key(key: str, content_type: str, cache_control: str) -> None:
    headers = headers_for(key)
    assert (headers.content_type, headers.cache_control) == (content_type, cache_control)
