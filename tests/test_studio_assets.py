"""Assets on real PostgreSQL, real storage (a local folder and S3 over HTTP) and a real ffprobe.

Whatever is refused leaves nothing behind: each such test lists the storage and the table to prove it.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from fluxstudio.errors import EmptyUpload, Invalid, NotFound, TooLarge, UnreadableMedia
from fluxstudio.ids import new_id
from fluxstudio.media import probe
from fluxstudio.queue import Queue, cancel_channel, job_channel, loads
from fluxstudio.storage import LocalStorage, S3Storage, Storage
from fluxstudio.studio import jobs
from fluxstudio.studio.assets import (
    FILENAME_MAX,
    asset_row,
    clean_filename,
    delete_asset,
    get_asset,
    ingest,
    list_assets,
)
from fluxstudio.studio.media_urls import MediaUrls
from fluxstudio.studio.models import JobOptions
from fluxstudio.studio.projects import create_project
from fluxstudio.studio.users import User, ensure_user
from tests.fixtures.media import make_clip_in

MEDIA_BASE = "http://api.test/media"


async def new_user(pool: asyncpg.Pool) -> User:
    return await ensure_user(pool, f"{uuid.uuid4().hex[:10]}@example.com")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Made once for the module: ingest reads its upload and leaves it in place."""
    folder = tmp_path_factory.mktemp("clips")
    mp4 = make_clip_in(folder, "clip")
    wav = make_clip_in(folder, "tone", video=False, container="wav", duration=1.0)
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])  # the moov box is at the end
    text = folder / "notes.mp4"
    text.write_text("just some text, not a video\n" * 50)
    playlist = folder / "evil.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{mp4}\n#EXT-X-ENDLIST\n")
    concat = folder / "list.mp4"
    concat.write_text(f"ffconcat version 1.0\nfile {mp4}\nfile {mp4.name}\n")
    return {
        "mp4": mp4,
        "wav": wav,
        "truncated": truncated,
        "text": text,
        "m3u8": playlist,
        "ffconcat": concat,
    }


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "media")
        return
    server = request.getfixturevalue("s3_server")
    async with S3Storage(server.settings(await server.create_bucket())) as s3:
        yield s3


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media")


@pytest.fixture
async def owner(pool: asyncpg.Pool) -> User:
    return await new_user(pool)


@pytest.fixture
async def project_id(pool: asyncpg.Pool, owner: User) -> str:
    return (await create_project(pool, owner, "Clips")).id


async def add(pool, storage, tools, user, project_id, path: Path, filename: str | None = None, **kwargs):
    size = path.stat().st_size
    return await ingest(
        pool, storage, tools, user, project_id, path,
        filename=filename or path.name, content_type=kwargs.pop("content_type", None), size=size, **kwargs,
    )  # fmt: skip


async def rows_in(pool: asyncpg.Pool, project_id: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM assets WHERE project_id = $1", project_id)


async def read(storage: Storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.open(key)])


# -- ingest -----------------------------------------------------------------------------------------


async def test_a_video_is_probed_stored_privately_and_recorded(
    pool, storage, tools, owner, project_id, clips
):
    asset = await add(pool, storage, tools, owner, project_id, clips["mp4"], content_type="text/html")
    assert asset.id.startswith("ast_") and asset.project_id == project_id
    assert (asset.filename, asset.status, asset.size_bytes) == (
        "clip.mp4",
        "uploaded",
        clips["mp4"].stat().st_size,
    )
    assert asset.content_type == "video/mp4"  # from what the bytes are, not from what the client said
    assert asset.media is not None
    assert (asset.media.width, asset.media.height, asset.media.has_video, asset.media.has_audio) == (
        320, 240, True, True,
    )  # fmt: skip
    assert asset.media.duration_s == pytest.approx(2.0, abs=0.1)
    assert asset.playback_url is None and asset.renditions == []
    key = f"sources/{asset.id}/source.mp4"
    assert await storage.list() == [key]
    assert (
        hashlib.sha256(await read(storage, key)).digest()
        == hashlib.sha256(clips["mp4"].read_bytes()).digest()
    )
    assert clips["mp4"].exists()  # the caller's temporary file is the caller's
    record = await asset_row(pool, owner, asset.id)
    assert record.source_key == key
    assert record.media_info() == await probe(clips["mp4"], tools)  # everything a ladder plan needs


async def test_audio_only_wav_is_accepted(pool, local, tools, owner, project_id, clips):
    asset = await add(pool, local, tools, owner, project_id, clips["wav"])
    assert asset.media is not None
    assert (asset.media.has_video, asset.media.has_audio, asset.media.width) == (False, True, None)
    assert asset.media.audio_codec == "pcm_s16le"
    assert asset.content_type is not None and asset.content_type.startswith("audio/")
    assert await local.list() == [f"sources/{asset.id}/source.wav"]


@pytest.mark.parametrize("kind", ["text", "truncated", "m3u8", "ffconcat"])
async def test_unreadable_uploads_leave_nothing_behind(pool, storage, tools, owner, project_id, clips, kind):
    with pytest.raises(UnreadableMedia):
        await add(pool, storage, tools, owner, project_id, clips[kind])
    assert await storage.list() == []
    assert await rows_in(pool, project_id) == 0


async def test_empty_oversize_and_misreported_uploads_are_refused(
    pool, local, tools, owner, project_id, clips
):
    empty = clips["mp4"].parent / "empty.mp4"
    empty.touch()
    with pytest.raises(EmptyUpload):
        await add(pool, local, tools, owner, project_id, empty)
    size = clips["mp4"].stat().st_size
    with pytest.raises(TooLarge):
        await add(pool, local, tools, owner, project_id, clips["mp4"], max_bytes=size - 1)
    with pytest.raises(Invalid):
        await ingest(
            pool,
            local,
            tools,
            owner,
            project_id,
            clips["mp4"],
            filename="a.mp4",
            content_type=None,
            size=size + 1,
        )
    assert await local.list() == []
    assert await rows_in(pool, project_id) == 0
    assert (await add(pool, local, tools, owner, project_id, clips["mp4"], max_bytes=size)).size_bytes == size


async def test_a_failed_insert_deletes_the_stored_source(pool, local, tools, owner, project_id, clips):
    # A real PostgreSQL failure at the insert, for this one filename only.
    marker = f"fail-{uuid.uuid4().hex[:8]}.mp4"
    function = f"refuse_{uuid.uuid4().hex[:8]}"
    await pool.execute(
        f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF NEW.filename = '{marker}' THEN RAISE EXCEPTION 'refused by test'; END IF; RETURN NEW; END $$"
    )
    await pool.execute(
        f"CREATE TRIGGER {function} BEFORE INSERT ON assets FOR EACH ROW EXECUTE FUNCTION {function}()"
    )
    try:
        with pytest.raises(asyncpg.RaiseError):
            await add(pool, local, tools, owner, project_id, clips["mp4"], filename=marker)
    finally:
        await pool.execute(f"DROP TRIGGER {function} ON assets")
        await pool.execute(f"DROP FUNCTION {function}()")
    assert await local.list() == []
    assert await rows_in(pool, project_id) == 0


# -- filenames --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("clip.mp4", "clip.mp4"),
        ("../../etc/passwd.mp4", "passwd.mp4"),
        ("C:\\Users\\me\\My Clip.mov", "My Clip.mov"),
        ("-i", "-i"),
        ("%d.mp4", "%d.mp4"),
        ("bell\x07\x00name\r\n.mp4", "bellname .mp4"),
        ("evil\u202egnp.mp4", "evilgnp.mp4"),
        ("  spaced\tout  .mkv ", "spaced out .mkv"),
        ("Cafe\u0301.mp4", "Caf\u00e9.mp4"),
        ("x" * 300 + ".webm", "x" * (FILENAME_MAX - 5) + ".webm"),
    ],
)
def test_clean_filename(given, shown):
    assert clean_filename(given) == shown
    assert len(clean_filename(given)) <= FILENAME_MAX


@pytest.mark.parametrize("given", ["", "   ", ".", "..", "dir/", "a/..", "\x00\x01", None])
def test_a_filename_with_nothing_left_is_invalid(given):
    with pytest.raises(Invalid):
        clean_filename(given)


@pytest.mark.parametrize(
    ("filename", "shown", "ext"),
    [
        ("-i", "-i", ".mp4"),
        ("%d.mp4", "%d.mp4", ".mp4"),
        ("../../../tmp/x.mov", "x.mov", ".mov"),
        ("song.mp3", "song.mp3", ".mp4"),  # the bytes are MP4: the stored extension says so
        ("clip.m3u8", "clip.m3u8", ".mp4"),
    ],
)
async def test_hostile_names_never_reach_a_key(
    pool, local, tools, owner, project_id, clips, filename, shown, ext
):
    asset = await add(pool, local, tools, owner, project_id, clips["mp4"], filename=filename)
    assert asset.filename == shown
    assert await local.list() == [f"sources/{asset.id}/source{ext}"]


# -- reading ----------------------------------------------------------------------------------------


async def mark_transcoded(pool: asyncpg.Pool, asset_id: str, names: list[str], *, finished: str) -> str:
    """What a successful job leaves in the tables: its row, its renditions, the asset's playback key."""
    job_id = new_id("job")
    prefix = f"hls/{asset_id}/{job_id}"
    await pool.execute(
        "INSERT INTO jobs (id, asset_id, status, progress, attempt, finished_at)"
        " VALUES ($1, $2, 'succeeded', 1, 1, now() - $3::text::interval)",
        job_id,
        asset_id,
        finished,
    )
    for i, name in enumerate(names):
        await pool.execute(
            "INSERT INTO renditions (id, job_id, asset_id, name, width, height, bandwidth, playlist_key)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            new_id("ren"), job_id, asset_id, name, 320 >> i, 240 >> i, 900_000 >> i,
            f"{prefix}/{name}/index.m3u8",
        )  # fmt: skip
    await pool.execute(
        "UPDATE assets SET status = 'ready', playback_key = $2 WHERE id = $1",
        asset_id,
        f"{prefix}/master.m3u8",
    )
    return job_id


async def test_a_ready_asset_has_playback_and_renditions_of_its_latest_job(
    pool, local, tools, owner, project_id, clips
):
    asset = await add(pool, local, tools, owner, project_id, clips["mp4"])
    pending = await add(pool, local, tools, owner, project_id, clips["wav"])
    await mark_transcoded(pool, asset.id, ["old"], finished="1 hour")
    job_id = await mark_transcoded(pool, asset.id, ["240p", "120p"], finished="1 minute")
    urls = MediaUrls(local, MEDIA_BASE + "/")
    got = await get_asset(pool, owner, asset.id, urls)
    base = f"{MEDIA_BASE}/hls/{asset.id}/{job_id}"
    assert got.status == "ready" and got.playback_url == f"{base}/master.m3u8"
    assert [(r.name, r.width, r.height, r.bandwidth, r.playlist_url) for r in got.renditions] == [
        ("240p", 320, 240, 900_000, f"{base}/240p/index.m3u8"),
        ("120p", 160, 120, 450_000, f"{base}/120p/index.m3u8"),
    ]
    listed = await list_assets(pool, owner, project_id, urls)
    assert [a.id for a in listed] == [asset.id, pending.id]
    assert listed[0] == got
    assert (listed[1].status, listed[1].playback_url, listed[1].renditions) == ("uploaded", None, [])
    cdn = MediaUrls(LocalStorage(local.root, public_base_url="https://cdn.example/m"), MEDIA_BASE)
    assert (
        await get_asset(pool, owner, asset.id, cdn)
    ).playback_url == f"https://cdn.example/m/hls/{asset.id}/{job_id}/master.m3u8"


async def test_two_users_are_isolated_on_every_operation(pool, local, tools, owner, project_id, clips):
    stranger = await new_user(pool)
    asset = await add(pool, local, tools, owner, project_id, clips["mp4"])
    urls = MediaUrls(local, MEDIA_BASE)
    stored = await local.list()
    with pytest.raises(NotFound):
        await add(pool, local, tools, stranger, project_id, clips["mp4"])
    with pytest.raises(NotFound):
        await list_assets(pool, stranger, project_id, urls)
    with pytest.raises(NotFound):
        await get_asset(pool, stranger, asset.id, urls)
    with pytest.raises(NotFound):
        await asset_row(pool, stranger, asset.id)
    with pytest.raises(NotFound):
        await delete_asset(pool, local, None, stranger, asset.id)
    assert await local.list() == stored
    assert await rows_in(pool, project_id) == 1
    assert (await get_asset(pool, owner, asset.id, urls)).id == asset.id
    # The stranger's own project of the same shape sees none of it.
    theirs = await create_project(pool, stranger, "Clips")
    assert await list_assets(pool, stranger, theirs.id, urls) == []


# -- deleting ---------------------------------------------------------------------------------------


async def test_delete_removes_the_row_and_every_stored_object(pool, storage, tools, owner, project_id, clips):
    asset = await add(pool, storage, tools, owner, project_id, clips["mp4"])
    kept = await add(pool, storage, tools, owner, project_id, clips["wav"])
    job_id = await mark_transcoded(pool, asset.id, ["240p"], finished="1 minute")
    outputs = [
        f"hls/{asset.id}/{job_id}/{name}" for name in ("master.m3u8", "240p/index.m3u8", "240p/seg_0.m4s")
    ]
    for key in outputs:
        await storage.put(key, b"#EXTM3U\n")
    assert len(await storage.list()) == 2 + len(outputs)
    await delete_asset(pool, storage, None, owner, asset.id)
    assert await storage.list() == [f"sources/{kept.id}/source.wav"]
    with pytest.raises(NotFound):
        await get_asset(pool, owner, asset.id, MediaUrls(storage, MEDIA_BASE))
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE asset_id = $1", asset.id) == 0
    assert await pool.fetchval("SELECT count(*) FROM renditions WHERE asset_id = $1", asset.id) == 0
    assert [a.id for a in await list_assets(pool, owner, project_id, MediaUrls(storage, MEDIA_BASE))] == [
        kept.id
    ]
    with pytest.raises(NotFound):
        await delete_asset(pool, storage, None, owner, asset.id)


async def test_delete_cancels_unfinished_jobs_and_tells_their_worker(
    pool, local, tools, owner, project_id, clips, redis_url
):
    queue = await Queue.connect(redis_url, queue_name=f"test-{uuid.uuid4().hex[:8]}")
    listener = queue.redis.pubsub()
    try:
        asset = await add(pool, local, tools, owner, project_id, clips["mp4"])
        queued = await jobs.create_job(pool, queue, owner, asset.id, JobOptions(), max_attempts=3)
        running = await jobs.create_job(pool, queue, owner, asset.id, JobOptions(), max_attempts=3)
        finished = await jobs.create_job(pool, queue, owner, asset.id, JobOptions(), max_attempts=3)
        await pool.execute(
            "UPDATE jobs SET status = 'running', attempt = 1, started_at = now(),"
            " lease_until = now() + interval '1 minute' WHERE id = $1",
            running.id,
        )
        await pool.execute(
            "UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = $1", finished.id
        )
        channels = [
            cancel_channel(queue.queue_name),
            *(job_channel(j.id) for j in (queued, running, finished)),
        ]
        await listener.subscribe(*channels)
        confirmed = 0
        async with asyncio.timeout(10):  # subscribed for sure before anything is published
            while confirmed < len(channels):
                message = await listener.get_message(timeout=1)
                confirmed += message is not None and message["type"] == "subscribe"
        await delete_asset(pool, local, queue, owner, asset.id)
        heard: dict[str, list[dict]] = {}
        async with asyncio.timeout(10):
            while len(heard) < 3:
                message = await listener.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    heard.setdefault(message["channel"].decode(), []).append(loads(message["data"]))
        assert heard[cancel_channel(queue.queue_name)] == [running.id]  # only a running job has a worker
        for job in (queued, running):
            [event] = heard[job_channel(job.id)]
            assert (event["event"], event["data"]["status"]) == ("status", "cancelled")
        assert job_channel(finished.id) not in heard
        assert await local.list() == []
        assert await pool.fetchval("SELECT count(*) FROM jobs WHERE asset_id = $1", asset.id) == 0
    finally:
        await listener.aclose()
        await queue.aclose()
