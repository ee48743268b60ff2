"""Watch while transcoding: publish a job's HLS output while ffmpeg is still writing it.

Every few hundred milliseconds the output folder is read: new init and media segments are uploaded, then
the media playlists that name them (ffmpeg writes both atomically, `temp_file`, so a playlist never names
a half-written segment, and we upload a playlist only after every segment it names). Once every
rendition has a segment the master playlist (nominal rates) goes up, the asset becomes playable and the
job's stream says `playable`. The final pass after ffmpeg exits uploads the rest: ENDLIST playlists, the
measured master, the extras. What is uploaded is remembered (name, size, mtime) so nothing goes twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from fluxstudio.errors import FluxError
from fluxstudio.log import get_logger
from fluxstudio.media import Ladder
from fluxstudio.media.command import AUDIO_NAME
from fluxstudio.media.hls import early_master
from fluxstudio.media.playlists import parse_media_playlist
from fluxstudio.storage import Storage

POLL_S = 0.25
_UPLOADS_AT_ONCE = 8

log = get_logger()


class LiveUpload:
    """Mirrors `out_dir` to `prefix` in storage; `on_playable()` once the master is up."""

    def __init__(
        self,
        storage: Storage,
        out_dir: Path,
        prefix: str,
        ladder: Ladder,
        on_playable: Callable[[], Awaitable[None]],
    ) -> None:
        self.storage, self.out_dir, self.prefix, self.ladder = storage, out_dir, prefix, ladder
        self.on_playable = on_playable
        self.playable = False
        self._sent: dict[str, tuple[int, int]] = {}
        self._limit = asyncio.Semaphore(_UPLOADS_AT_ONCE)
        self._in_flight: set[asyncio.Task[None]] = set()

    async def follow(self) -> None:
        """Runs until cancelled (when ffmpeg is done); a storage hiccup is retried at the next poll."""
        while True:
            try:
                await self.sync_streams()
                if not self.playable and early_master(self.out_dir, self.ladder) is not None:
                    await self._put("master.m3u8")
                    self.playable = True
                    await self.on_playable()
            except FluxError as exc:
                log.warning("live_upload_failed", error=exc.message)
            await asyncio.sleep(POLL_S)

    async def sync_streams(self) -> None:
        """Upload every rendition's new segments, then its playlist."""
        names = [r.name for r in self.ladder.renditions] + ([AUDIO_NAME] if self.ladder.audio else [])
        await asyncio.gather(*(self._sync_rendition(name) for name in names))

    async def _sync_rendition(self, name: str) -> None:
        playlist = self.out_dir / name / "index.m3u8"
        try:  # the stamp before the read: a playlist replaced meanwhile is sent again next time
            st = playlist.stat()
            data = playlist.read_bytes()
        except FileNotFoundError:
            return
        media = parse_media_playlist(data.decode())
        files = ([media.init] if media.init else []) + [uri for uri, _ in media.segments]
        await asyncio.gather(*(self._put(f"{name}/{uri}") for uri in files))
        await self._put(f"{name}/index.m3u8", data, (st.st_size, st.st_mtime_ns))

    async def finish(self, files: tuple[str, ...]) -> None:
        """After ffmpeg: every file of the result not yet sent (or changed), the master last."""
        *parts, master = files
        await asyncio.gather(*(self._put(name) for name in parts))
        await self._put(master)

    async def _put(self, name: str, data: bytes | None = None, stamp: tuple[int, int] | None = None) -> None:
        path = self.out_dir / name
        if stamp is None:
            try:
                st = path.stat()
            except FileNotFoundError:
                return
            stamp = (st.st_size, st.st_mtime_ns)
        if self._sent.get(name) == stamp:
            return
        async with self._limit:
            # Shielded: a write already under way (in a thread, for local storage) ends before anyone
            # deletes the prefix, or it would bring a file back after the delete (see `settle`).
            if data is None:
                upload = asyncio.ensure_future(self.storage.put_file(self.prefix + name, path))
            else:
                upload = asyncio.ensure_future(self.storage.put(self.prefix + name, data))
            self._in_flight.add(upload)
            upload.add_done_callback(self._in_flight.discard)
            await asyncio.shield(upload)
        self._sent[name] = stamp

    async def settle(self) -> None:
        """Wait for the writes still under way, after the follower was cancelled."""
        await asyncio.gather(*self._in_flight, return_exceptions=True)


async def stop(task: asyncio.Task[None], live: LiveUpload) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await live.settle()
