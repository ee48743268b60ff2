"""The playback rules in `studio/`, against real PostgreSQL: tokens bound to an asset and a time, the
partial stream of watch-while-transcoding published and taken down with the job's fate, the policy."""

from __future__ import annotations

import time

import asyncpg
import pytest

from fluxstudio.config import Secret
from fluxstudio.errors import Conflict, Forbidden, Invalid
from fluxstudio.queue import Queue
from fluxstudio.storage import LocalStorage
from fluxstudio.studio import assets, jobs, leases, playback
from fluxstudio.studio.media_urls import MediaUrls
from fluxstudio.studio.models import JobError, JobOptions
from fluxstudio.studio.users import User
from tests.fixtures.jobs import AssetMaker

KEY = Secret("k" * 40)


def test_tokens_are_bound_to_an_asset_and_a_time() -> None:
    now = time.time()
    token = playback.sign(KEY, "ast_a", int(now) + 60)
    assert playback.verify(KEY, token, "ast_a", now=now) == int(now) + 60
    for bad, asset in (
        (token, "ast_b"),  # another asset
        (token.replace(str(int(now) + 60), str(int(now) + 9999)), "ast_a"),  # a longer life
        (token[:-1] + ("A" if token[-1] != "A" else "B"), "ast_a"),  # an altered signature
        (playback.sign(Secret("x" * 40), "ast_a", int(now) + 60), "ast_a"),  # another key
        ("", "ast_a"), ("nonsense", "ast_a"), ("a.b.c", "ast_a"),
    ):  # fmt: skip
        with pytest.raises(Forbidden):
            playback.verify(KEY, bad, asset, now=now)
    with pytest.raises(Forbidden, match="expired"):
        playback.verify(KEY, token, "ast_a", now=now + 61)
    with pytest.raises(Forbidden):
        playback.verify(None, token, "ast_a", now=now)


async def _running(
    pool: asyncpg.Pool, queue: Queue, owner: User, asset_id: str, max_attempts: int = 1
) -> leases.Claim:
    job = await jobs.create_job(pool, queue, owner, asset_id, JobOptions(), max_attempts=max_attempts)
    claim = await leases.claim_job(pool, job.id, worker="test", lease_s=30)
    assert claim is not None
    return claim


async def _asset_row(pool: asyncpg.Pool, asset_id: str) -> asyncpg.Record:
    return await pool.fetchrow("SELECT status, playable, playback_key FROM assets WHERE id = $1", asset_id)


async def test_a_partial_stream_is_published_then_taken_down_when_the_job_fails(
    pool: asyncpg.Pool, queue: Queue, owner: User, make_asset: AssetMaker, clips
) -> None:
    asset_id = await make_asset(clips(duration=1.0))
    claim = await _running(pool, queue, owner, asset_id)
    key = jobs.output_prefix(asset_id, claim.job_id) + "master.m3u8"
    assert not await leases.mark_playable(pool, claim.job_id, claim.attempt + 1, key)  # fenced
    assert await leases.mark_playable(pool, claim.job_id, claim.attempt, key)
    row = await _asset_row(pool, asset_id)
    assert (row["status"], row["playable"], row["playback_key"]) == ("processing", True, key)
    await leases.fail(pool, claim.job_id, claim.attempt, JobError(code="media_error", message="x"))
    row = await _asset_row(pool, asset_id)
    assert (row["status"], row["playable"], row["playback_key"]) == ("failed", False, None)


async def test_a_ready_asset_keeps_playing_its_stream_while_it_is_transcoded_again(
    pool: asyncpg.Pool, queue: Queue, owner: User, make_asset: AssetMaker, clips
) -> None:
    asset_id = await make_asset(clips(duration=1.0))
    first = await _running(pool, queue, owner, asset_id)
    done = jobs.output_prefix(asset_id, first.job_id) + "master.m3u8"
    await leases.succeed(pool, first.job_id, first.attempt, renditions=[], playback_key=done)
    second = await _running(pool, queue, owner, asset_id)
    prefix = jobs.output_prefix(asset_id, second.job_id)
    assert not await leases.mark_playable(pool, second.job_id, second.attempt, prefix + "master.m3u8")
    assert await leases.take_down(pool, second.job_id, second.attempt, prefix)  # its own to delete
    row = await _asset_row(pool, asset_id)
    assert (row["status"], row["playable"], row["playback_key"]) == ("ready", True, done)


async def test_a_superseded_attempt_leaves_the_new_attempts_stream_alone(
    pool: asyncpg.Pool, queue: Queue, owner: User, make_asset: AssetMaker, clips
) -> None:
    asset_id = await make_asset(clips(duration=1.0))
    old = await _running(pool, queue, owner, asset_id, max_attempts=3)
    prefix = jobs.output_prefix(asset_id, old.job_id)
    # the old attempt's lease expired and another worker claimed the job again
    await pool.execute("UPDATE jobs SET lease_until = now() - interval '1 s' WHERE id = $1", old.job_id)
    await leases.reconcile(pool, None)
    new = await leases.claim_job(pool, old.job_id, worker="other", lease_s=30)
    assert new is not None and new.attempt == old.attempt + 1
    assert await leases.mark_playable(pool, new.job_id, new.attempt, prefix + "master.m3u8")
    assert not await leases.take_down(pool, old.job_id, old.attempt, prefix)  # not the old one's any more
    row = await _asset_row(pool, asset_id)
    assert (row["playable"], row["playback_key"]) == (True, prefix + "master.m3u8")


async def test_cancel_takes_the_partial_stream_down_at_once(
    pool: asyncpg.Pool, queue: Queue, owner: User, make_asset: AssetMaker, clips
) -> None:
    asset_id = await make_asset(clips(duration=1.0))
    claim = await _running(pool, queue, owner, asset_id)
    prefix = jobs.output_prefix(asset_id, claim.job_id)
    await leases.mark_playable(pool, claim.job_id, claim.attempt, prefix + "master.m3u8")
    await jobs.cancel_job(pool, queue, owner, claim.job_id)
    row = await _asset_row(pool, asset_id)
    assert (row["status"], row["playable"], row["playback_key"]) == ("uploaded", False, None)


async def test_policy_needs_a_key_and_hides_the_urls(
    pool: asyncpg.Pool, owner: User, stranger: User, make_asset: AssetMaker, clips, storage: LocalStorage
) -> None:
    asset_id = await make_asset(clips(duration=1.0))
    urls = MediaUrls(storage, "http://api.test/media")
    with pytest.raises(Conflict, match="PLAYBACK_SIGNING_KEY"):
        await playback.set_policy(pool, owner, asset_id, "signed", None, urls)
    with pytest.raises(Invalid):
        await playback.set_policy(pool, owner, asset_id, "secret", KEY, urls)
    with pytest.raises(Exception, match="no asset"):
        await playback.set_policy(pool, stranger, asset_id, "signed", KEY, urls)
    signed = await playback.set_policy(pool, owner, asset_id, "signed", KEY, urls)
    assert signed.playback_policy == "signed"
    token = await playback.create_token(pool, owner, asset_id, KEY, urls, ttl_s=60)
    assert token.playback_url is None  # nothing playable yet; the poster and the rest follow the asset
    for ttl in (0, 86401, True):
        with pytest.raises(Invalid):
            await playback.create_token(pool, owner, asset_id, KEY, urls, ttl_s=ttl)
    assert (await assets.get_asset(pool, owner, asset_id, urls)).playback_policy == "signed"
