"""One-use upload capabilities on a real PostgreSQL, and accepting an upload through them."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from fluxstudio.errors import Gone, Invalid, NotFound
from fluxstudio.storage import LocalStorage
from fluxstudio.studio.assets import get_asset
from fluxstudio.studio.media_urls import MediaUrls
from fluxstudio.studio.projects import create_project
from fluxstudio.studio.uploads import MAX_TTL_S, accept_upload, create_upload, redeem_upload
from fluxstudio.studio.users import User, ensure_user
from tests.fixtures.media import make_clip_in


async def new_user(pool: asyncpg.Pool) -> User:
    return await ensure_user(pool, f"{uuid.uuid4().hex[:10]}@example.com")


@pytest.fixture
async def owner(pool: asyncpg.Pool) -> User:
    return await new_user(pool)


@pytest.fixture
async def project_id(pool: asyncpg.Pool, owner: User) -> str:
    return (await create_project(pool, owner, "Inbox")).id


async def test_a_capability_is_random_stored_only_as_a_hash_and_expires(pool, owner, project_id):
    before = datetime.now(UTC)
    grant = await create_upload(pool, owner, project_id, "../Clip.MP4", ttl_s=600)
    other = await create_upload(pool, owner, project_id, "clip.mp4")
    assert grant.token.startswith("upl_") and len(grant.token) == 47 and grant.token != other.token
    assert grant.id.startswith("upl_") and grant.id != grant.token
    assert before + timedelta(seconds=590) < grant.expires_at < datetime.now(UTC) + timedelta(seconds=610)
    row = await pool.fetchrow("SELECT * FROM upload_capabilities WHERE id = $1", grant.id)
    assert row["token_hash"] == hashlib.sha256(grant.token.encode()).hexdigest()
    assert grant.token not in [str(v) for v in row.values()]
    assert (row["filename"], row["used_at"], row["transcode"]) == ("Clip.MP4", None, False)


async def test_redeem_once_then_gone(pool, owner, project_id):
    grant = await create_upload(pool, owner, project_id, "clip.mp4", transcode=True)
    redeemed = await redeem_upload(pool, grant.token)
    assert redeemed == (owner, project_id, "clip.mp4", True)
    with pytest.raises(Gone) as again:
        await redeem_upload(pool, grant.token)
    # Used, unknown and malformed tokens all look the same to the holder.
    for token in ["upl_" + "A" * 43, "", "fs_notanuploadtoken", "upl_" + "x" * 500]:
        with pytest.raises(Gone) as unknown:
            await redeem_upload(pool, token)
        assert str(unknown.value) == str(again.value)


async def test_an_expired_capability_is_gone_and_stays_unused(pool, owner, project_id):
    grant = await create_upload(pool, owner, project_id, "clip.mp4")
    await pool.execute(
        "UPDATE upload_capabilities SET expires_at = now() - interval '1 second' WHERE id = $1", grant.id
    )
    with pytest.raises(Gone):
        await redeem_upload(pool, grant.token)
    assert await pool.fetchval("SELECT used_at FROM upload_capabilities WHERE id = $1", grant.id) is None


async def test_of_concurrent_redeems_exactly_one_wins(pool, owner, project_id):
    grant = await create_upload(pool, owner, project_id, "clip.mp4")
    results = await asyncio.gather(
        *(redeem_upload(pool, grant.token) for _ in range(6)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1 and winners[0].project_id == project_id
    assert all(isinstance(r, Gone) for r in results if r not in winners)


async def test_only_the_owner_may_create_and_bad_input_is_invalid(pool, owner, project_id):
    stranger = await new_user(pool)
    with pytest.raises(NotFound):
        await create_upload(pool, stranger, project_id, "clip.mp4")
    for filename in ["", "..", "a/", "\x00"]:
        with pytest.raises(Invalid):
            await create_upload(pool, owner, project_id, filename)
    for ttl_s in [0, -5, MAX_TTL_S + 1]:
        with pytest.raises(Invalid):
            await create_upload(pool, owner, project_id, "clip.mp4", ttl_s=ttl_s)
    count = "SELECT count(*) FROM upload_capabilities WHERE project_id = $1"
    assert await pool.fetchval(count, project_id) == 0


async def test_a_redeemed_capability_uploads_into_its_project(pool, tools, owner, project_id, tmp_path: Path):
    storage = LocalStorage(tmp_path / "media")
    clip = make_clip_in(tmp_path, "upload", duration=1.0)
    grant = await create_upload(pool, owner, project_id, "%d -i.mp4")
    redeemed = await redeem_upload(pool, grant.token)
    asset, job = await accept_upload(
        pool,
        storage,
        tools,
        None,
        redeemed.user,
        redeemed.project_id,
        clip,
        filename=redeemed.filename,
        content_type="video/mp4",
        size=clip.stat().st_size,
        transcode=redeemed.transcode,
        max_attempts=3,
    )
    assert job is None
    assert (asset.project_id, asset.filename, asset.status) == (project_id, "%d -i.mp4", "uploaded")
    assert await storage.list() == [f"sources/{asset.id}/source.mp4"]


async def test_upload_with_transcode_creates_a_queued_job(pool, tools, owner, project_id, tmp_path: Path):
    storage = LocalStorage(tmp_path / "media")
    clip = make_clip_in(tmp_path, "upload", duration=1.0)
    asset, job = await accept_upload(
        pool, storage, tools, None, owner, project_id, clip,
        filename="clip.mp4", content_type=None, size=clip.stat().st_size, transcode=True, max_attempts=3,
    )  # fmt: skip
    assert job is not None and job.asset_id == asset.id and job.status == "queued"
    # The answer carries the asset as stored once the job exists.
    urls = MediaUrls(storage, "http://api.test/media")
    assert asset.status == (await get_asset(pool, owner, asset.id, urls)).status == "processing"
