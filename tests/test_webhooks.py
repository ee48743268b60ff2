"""Standard Webhooks through real servers, workers and receivers: signatures the `standardwebhooks`
library verifies, the same webhook-id on every retry, the outbox surviving a killed API and worker and a
flushed Redis, isolation between users, endpoint URL rules, deletion stopping deliveries, redirects not
followed, and the events of a real transcode."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from standardwebhooks.webhooks import Webhook

from tests.fixtures.platform import ApiServer, ApiUser, wait_for
from tests.fixtures.receiver import Answer, Receiver
from tests.test_api_uploads import new_project

ALLOW_LOOPBACK = {"IMPORT_ALLOWED_NETWORKS": "127.0.0.1/32"}
FAST_RETRIES = {"WEBHOOK_RETRY_SCHEDULE": "200ms,200ms,200ms"}


@pytest.fixture
def hook_env(api_env: dict[str, str]) -> dict[str, str]:
    return {**api_env, **ALLOW_LOOPBACK, **FAST_RETRIES}


@pytest.fixture
def hook_api(fresh_api, hook_env: dict[str, str]) -> ApiServer:
    return fresh_api(hook_env)


async def add_endpoint(user: ApiUser, url: str, events: list[str] | None = None) -> dict:
    async with user.client() as client:
        body = {"url": url} if events is None else {"url": url, "events": events}
        response = await client.post("/api/v1/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def verified(endpoint: dict, request) -> dict:
    """The body, after the standardwebhooks library has checked the signature against the secret."""
    return Webhook(endpoint["secret"]).verify(request.body, request.headers)


async def upload(client, project: str, clip: Path, transcode: bool = False) -> dict:
    response = await client.post(
        f"/api/v1/projects/{project}/assets?filename=clip.mp4&transcode={str(transcode).lower()}",
        content=clip.read_bytes(),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_receiver_failing_twice_gets_the_same_webhook_id_three_times(
    hook_api: ApiServer, hook_env, make_user, receiver, start_worker, pool: asyncpg.Pool
) -> None:
    r: Receiver = receiver()
    r.answers = [Answer(500), Answer(503), Answer(204)]
    user = await make_user("hooks", hook_api)
    endpoint = await add_endpoint(user, r.url + "/hook")
    assert endpoint["secret"].startswith("whsec_")
    start_worker(hook_env)
    async with user.client() as client:
        sent = await client.post(f"/api/v1/webhooks/{endpoint['id']}/test")
        assert sent.status_code == 202
        posts = await r.wait_for(3)
        ids = {p.headers["webhook-id"] for p in posts}
        assert ids == {sent.json()["event_id"]}
        bodies = [verified(endpoint, p) for p in posts]  # each retry signed afresh, each one valid
        assert all(b["type"] == "webhook.test" and b["data"]["endpoint_id"] == endpoint["id"] for b in bodies)
        assert len({p.body for p in posts}) == 1
        log = await wait_for(
            lambda: _attempts(client, endpoint["id"], 3), 60, "three attempts in the delivery log"
        )
        assert [a["status_code"] for a in reversed(log)] == [500, 503, 204]
        assert {a["event_id"] for a in log} == ids and all(a["type"] == "webhook.test" for a in log)
    status = await pool.fetchval(
        "SELECT status FROM webhook_deliveries WHERE event_id = $1", sent.json()["event_id"]
    )
    assert status == "succeeded"
    assert len(r.posts()) == 3  # nothing after the 2xx


async def deliveries_of(pool: asyncpg.Pool, endpoint_id: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", endpoint_id)


async def _attempts(client, endpoint_id: str, count: int) -> list[dict] | None:
    items = (await client.get(f"/api/v1/webhooks/{endpoint_id}/deliveries")).json()["items"]
    return items if len(items) >= count else None


async def test_events_survive_killed_processes_and_a_flushed_redis(
    fresh_api, hook_env, make_user, receiver, start_worker, api_clip: Path, redis_url: str
) -> None:
    """A worker is SIGKILLed, events are recorded, the API is SIGKILLed and Redis flushed: a new worker
    still sends every event."""
    r: Receiver = receiver()
    api = fresh_api(hook_env)
    doomed = start_worker(hook_env)
    await wait_for(lambda: "worker_started" in doomed.log(), 120, "the first worker to start")
    doomed.stop(signal.SIGKILL)  # the fleet is gone: the events below wait in PostgreSQL alone
    user = await make_user("hooks", api)
    endpoint = await add_endpoint(user, r.url, ["job.cancelled", "asset.deleted"])
    async with user.client() as client:
        project = await new_project(client)
        created = await upload(client, project, api_clip, transcode=True)
        job_id, asset_id = created["job"]["id"], created["asset"]["id"]
        assert (await client.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 202
        assert (await client.delete(f"/api/v1/assets/{asset_id}")).status_code == 204
    api.process.send_signal(signal.SIGKILL)
    api.process.wait(10)
    flusher = aioredis.from_url(redis_url)
    await flusher.flushdb()
    await flusher.aclose()
    start_worker(hook_env)
    posts = await r.wait_for(2)
    events = {verified(endpoint, p)["type"]: verified(endpoint, p)["data"] for p in posts}
    assert events["job.cancelled"]["id"] == job_id and events["job.cancelled"]["status"] == "cancelled"
    assert events["asset.deleted"]["id"] == asset_id


async def test_another_users_endpoint_receives_nothing(
    hook_api: ApiServer, hook_env, make_user, receiver, start_worker, api_clip: Path, pool: asyncpg.Pool
) -> None:
    mine, theirs = receiver(), receiver()
    ann, bob = await make_user("ann", hook_api), await make_user("bob", hook_api)
    await add_endpoint(ann, mine.url)
    bobs = await add_endpoint(bob, theirs.url)
    start_worker(hook_env)
    async with ann.client() as client:
        project = await new_project(client)
        asset = (await upload(client, project, api_clip))["asset"]
        assert (await client.delete(f"/api/v1/assets/{asset['id']}")).status_code == 204
    await mine.wait_for(1)
    assert (
        await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", bobs["id"]) == 0
    )
    async with bob.client() as client:  # bob's endpoint works, and hears only bob's event
        project = await new_project(client)
        asset = (await upload(client, project, api_clip))["asset"]
        assert (await client.delete(f"/api/v1/assets/{asset['id']}")).status_code == 204
    [post] = await theirs.wait_for(1)
    assert verified(bobs, post)["data"]["id"] == asset["id"]
    assert len(theirs.posts()) == 1


async def test_endpoint_urls_follow_the_import_rules(api: ApiServer, make_user) -> None:
    user = await make_user("hooks")
    async with user.client() as client:
        for url in (
            "ftp://example.com/hook", "http://10.0.0.7/hook", "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:127.0.0.1]/hook", "http://localhost:8080/hook", "http://127.0.0.1:9/hook",
        ):  # fmt: skip
            response = await client.post("/api/v1/webhooks", json={"url": url})
            assert response.status_code == 422, url
            assert response.json()["code"] in ("url_refused", "invalid")
        bad_event = await client.post(
            "/api/v1/webhooks", json={"url": "https://example.com/h", "events": ["x"]}
        )
        assert bad_event.status_code == 422
        created = await client.post("/api/v1/webhooks", json={"url": "https://example.com/h"})
        assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
        listed = (await client.get("/api/v1/webhooks")).json()["items"]
        assert [e["secret"] for e in listed] == [None]
        assert "asset.ready" in listed[0]["events"] and "comment.created" in listed[0]["events"]


async def test_deleting_an_endpoint_stops_its_deliveries(
    fresh_api, hook_env, make_user, receiver, start_worker, pool: asyncpg.Pool
) -> None:
    env = {**hook_env, "WEBHOOK_RETRY_SCHEDULE": "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms"}
    api = fresh_api(env)
    r: Receiver = receiver()
    r.answers = [Answer(500)]
    user = await make_user("hooks", api)
    endpoint = await add_endpoint(user, r.url)
    start_worker(env)
    async with user.client() as client:
        await client.post(f"/api/v1/webhooks/{endpoint['id']}/test")
        await r.wait_for(2)
        assert (await client.delete(f"/api/v1/webhooks/{endpoint['id']}")).status_code == 204
        assert (await client.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries")).status_code == 404
    seen = len(r.posts())
    assert (
        await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", endpoint["id"])
        == 0
    )
    # A second endpoint's delivery after the deletion proves the worker is still sending, to others only.
    other = receiver()
    second = await add_endpoint(user, other.url)
    async with user.client() as client:
        await client.post(f"/api/v1/webhooks/{second['id']}/test")
    await other.wait_for(1)
    assert len(r.posts()) <= seen + 1  # at most the one attempt that was in flight at the deletion


async def test_redirects_are_not_followed(
    hook_api: ApiServer, hook_env, make_user, receiver, start_worker, pool: asyncpg.Pool
) -> None:
    target, redirecting = receiver(), receiver()
    redirecting.answers = [Answer(302, headers={"Location": target.url + "/elsewhere"})]
    user = await make_user("hooks", hook_api)
    endpoint = await add_endpoint(user, redirecting.url)
    start_worker(hook_env)
    async with user.client() as client:
        await client.post(f"/api/v1/webhooks/{endpoint['id']}/test")
        log = await wait_for(lambda: _attempts(client, endpoint["id"], 1), 60, "an attempt")
    assert log[0]["status_code"] == 302
    assert target.posts() == []


async def test_a_transcode_sends_job_succeeded_and_asset_ready(
    hook_api: ApiServer, hook_env, make_user, receiver, start_worker, api_clip: Path
) -> None:
    r: Receiver = receiver()
    user = await make_user("hooks", hook_api)
    endpoint = await add_endpoint(user, r.url, ["job.succeeded", "asset.ready"])
    start_worker(hook_env)
    async with user.client() as client:
        project = await new_project(client)
        created = await upload(client, project, api_clip, transcode=True)
    posts = await r.wait_for(2, within_s=300)
    events = {verified(endpoint, p)["type"]: verified(endpoint, p) for p in posts}
    assert events["job.succeeded"]["data"]["id"] == created["job"]["id"]
    assert events["job.succeeded"]["data"]["status"] == "succeeded"
    ready = events["asset.ready"]
    assert ready["data"]["id"] == created["asset"]["id"] and ready["data"]["status"] == "ready"
    assert json.loads(posts[0].body)["timestamp"].endswith("+00:00")


async def test_a_comment_sends_comment_created_to_its_users_endpoints_only(
    hook_api: ApiServer, hook_env, make_user, receiver, start_worker, api_clip: Path
) -> None:
    mine, theirs = receiver(), receiver()
    ann, bob = await make_user("ann-comments", hook_api), await make_user("bob-comments", hook_api)
    endpoint = await add_endpoint(ann, mine.url, ["comment.created"])
    await add_endpoint(bob, theirs.url)
    start_worker(hook_env)
    async with ann.client() as client:
        project = await new_project(client)
        asset = (await upload(client, project, api_clip))["asset"]
        made = await client.post(
            f"/api/v1/assets/{asset['id']}/comments", json={"time_s": 0.5, "text": "too dark here"}
        )
        assert made.status_code == 201, made.text
    [post] = await mine.wait_for(1)
    body = verified(endpoint, post)
    assert body["type"] == "comment.created"
    assert body["data"]["id"] == made.json()["id"] and body["data"]["text"] == "too dark here"
    assert theirs.posts() == []
