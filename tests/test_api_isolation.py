"""Two users, every endpoint: another user's project, asset or job is 404 (never 403, never data), lists
never show it, and nothing of the owner's is changed by the attempts."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.fixtures.platform import ApiUser
from tests.test_api_service import assert_problem


async def test_every_endpoint_hides_other_users_objects(make_user, api_clip: Path) -> None:
    alice: ApiUser = await make_user("alice")
    bob: ApiUser = await make_user("bob")
    async with alice.client() as client:
        project = (await client.post("/api/v1/projects", json={"name": "alice's"})).json()["id"]
        upload = await client.post(f"/api/v1/projects/{project}/assets?filename=a.mp4",
                                   content=api_clip.read_bytes())
        asset = upload.json()["asset"]["id"]
        job = (await client.post(f"/api/v1/assets/{asset}/jobs", json={"renditions": ["240p"]})).json()["id"]

    async with bob.client() as client:
        requests = [
            ("GET", f"/api/v1/projects/{project}", {}),
            ("GET", f"/api/v1/projects/{project}/assets", {}),
            ("POST", f"/api/v1/projects/{project}/assets?filename=b.mp4", {"content": api_clip.read_bytes()}),
            ("POST", f"/api/v1/projects/{project}/uploads", {"json": {"filename": "b.mp4"}}),
            ("GET", f"/api/v1/assets/{asset}", {}),
            ("POST", f"/api/v1/assets/{asset}/jobs", {"json": {}}),
            ("GET", f"/api/v1/jobs/{job}", {}),
            ("GET", f"/api/v1/jobs/{job}/events", {}),
            ("POST", f"/api/v1/jobs/{job}/cancel", {}),
            ("DELETE", f"/api/v1/assets/{asset}", {}),
        ]
        for method, path, kwargs in requests:
            response = await client.request(method, path, **kwargs)
            body = assert_problem(response, 404)
            assert body["code"] == "not_found", (method, path)
            assert alice.email not in response.text and "a.mp4" not in response.text
        assert (await client.get("/api/v1/projects")).json()["items"] == []
        assert (await client.get("/api/v1/jobs")).json()["items"] == []
        assert (await client.get("/api/v1/jobs", params={"asset_id": asset})).json()["items"] == []

    async with alice.client() as client:  # untouched by bob's attempts
        assert (await client.get(f"/api/v1/assets/{asset}")).status_code == 200
        status = (await client.get(f"/api/v1/jobs/{job}")).json()["status"]
        assert status in ("queued", "running", "succeeded")
        assert len((await client.get(f"/api/v1/projects/{project}/assets")).json()["items"]) == 1
        await client.post(f"/api/v1/jobs/{job}/cancel")


async def test_a_revoked_or_foreign_token_cannot_be_used(make_user, pool) -> None:
    from fluxstudio.studio.tokens import list_tokens, revoke_token

    carol: ApiUser = await make_user("carol")
    async with carol.client() as client:
        assert (await client.get("/api/v1/projects")).status_code == 200
    token_id = (await list_tokens(pool, email=carol.email))[0].id
    await revoke_token(pool, token_id)
    async with carol.client() as client:
        assert_problem(await client.get("/api/v1/projects"), 401)
    async with httpx.AsyncClient(base_url=carol.server.url) as client:
        response = await client.get("/api/v1/projects", params={"token": carol.token})
        assert_problem(response, 401)  # a token in the query string is not a credential here
