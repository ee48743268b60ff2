"""The API's outside, beside the product routes: problem+json for every error, auth, the request id,
/healthz, /readyz (healthy, Redis unreachable, PostgreSQL unreachable and back), /metrics, /openapi.json.
Every server here is a real uvicorn process."""

from __future__ import annotations

import httpx
import pytest
from openapi_spec_validator import validate

from tests.fixtures.platform import ApiServer, free_port, postgres_target, redis_target, wait_for

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status and body["type"].startswith("urn:fluxstudio:problem:")
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_routing_errors_are_problems(api: ApiServer, make_user) -> None:
    user = await make_user("routing")
    async with user.client() as client:
        missing = assert_problem(await client.get("/api/v1/nothing-here"), 404)
        assert missing["code"] == "not_found"
        wrong_method = await client.patch("/api/v1/projects")
        body = assert_problem(wrong_method, 405)
        assert body["code"] == "method_not_allowed"
        assert set(wrong_method.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
        assert_problem(await client.get("/no/such/page"), 404)


async def test_unauthenticated_is_401_with_bearer_challenge(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        for headers in ({}, {"Authorization": "Bearer fs_not-a-real-token"}, {"Authorization": "Basic eDp5"}):
            response = await client.get("/api/v1/projects", headers=headers)
            body = assert_problem(response, 401)
            assert body["code"] == "unauthenticated"
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_unexpected_exception_is_a_bare_500_logged_once(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.get("/test-boom/x", headers={"X-Request-ID": "req-crash-1"})
    body = assert_problem(response, 500)
    assert body["request_id"] == "req-crash-1"
    assert "Traceback" not in response.text and "deliberate" not in response.text

    def failures() -> list[dict]:
        return [r for r in api.log_records() if r.get("request_id") == "req-crash-1"]

    await wait_for(lambda: any(r["event"] == "request_finished" for r in failures()), 5, "the access line")
    records = failures()
    crashes = [r for r in records if r.get("exception")]
    assert len(crashes) == 1, records
    assert crashes[0]["event"] == "request_failed" and "RuntimeError" in crashes[0]["exception"]
    # uvicorn did not log it a second time
    assert "Exception in ASGI application" not in api.log_text()


async def test_request_id_is_echoed_or_made(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        kept = await client.get("/healthz", headers={"X-Request-ID": "abc.123"})
        replaced = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert kept.headers["x-request-id"] == "abc.123"
    assert replaced.headers["x-request-id"].startswith("req_")


async def test_invalid_json_and_validation_errors(api: ApiServer, make_user) -> None:
    user = await make_user("validation")
    async with user.client() as client:
        json_type = {"Content-Type": "application/json"}
        broken = await client.post("/api/v1/projects", content=b"{not json", headers=json_type)
        assert assert_problem(broken, 400)["code"] == "malformed_request"
        unknown = await client.post("/api/v1/projects", json={"name": "x", "colour": "red"})
        body = assert_problem(unknown, 422)
        assert body["errors"][0]["loc"] == ["colour"]
        empty = await client.post("/api/v1/projects", json={"name": "   "})
        assert assert_problem(empty, 422)["code"] == "invalid"


async def test_healthz_and_readyz_when_healthy(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["component"] == "api"
    assert health.json()["version"]
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok" and body["checks"]["redis"]["status"] == "ok"


async def test_redis_unreachable_is_degraded_not_down(start_api, api_env: dict) -> None:
    server = start_api({**api_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    async with httpx.AsyncClient(base_url=server.url) as client:
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "degraded" and ready.json()["checks"]["redis"]["status"] == "down"
    assert health.status_code == 200
    # logged once at start, not once per retry
    assert [r["event"] for r in server.log_records()].count("redis_unavailable") == 1


async def test_postgres_unreachable_is_503_while_alive(start_api, api_env: dict) -> None:
    server = start_api({**api_env, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"})
    async with httpx.AsyncClient(base_url=server.url) as client:
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
        projects = await client.get("/api/v1/projects", headers={"Authorization": "Bearer fs_whatever"})
    assert ready.status_code == 503 and ready.json()["checks"]["database"]["status"] == "down"
    assert health.status_code == 200
    body = assert_problem(projects, 503)
    assert projects.headers["retry-after"]
    assert "postgres@" not in body["detail"]


async def test_unmigrated_database_is_not_ready(start_api, api_env: dict, create_database) -> None:
    server = start_api({**api_env, "DATABASE_URL": create_database()})
    async with httpx.AsyncClient(base_url=server.url) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == {"status": "not_migrated"}


async def test_postgres_lost_and_back_recovers_without_restart(start_api, api_env: dict, tcp_proxy) -> None:
    target, template = postgres_target(api_env["DATABASE_URL"])
    proxy = tcp_proxy(target)
    server = start_api({**api_env, "DATABASE_URL": template.format(port=proxy.port)})
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        assert (await client.get("/readyz")).status_code == 200
        proxy.cut()
        await wait_for(lambda: _status(client, "/readyz", 503), 15, "readyz to say 503")
        assert (await client.get("/healthz")).status_code == 200
        proxy.restore()
        await wait_for(lambda: _status(client, "/readyz", 200), 15, "readyz to recover")
    events = [r["event"] for r in server.log_records()]
    assert events.count("readiness_changed") >= 2


async def test_redis_lost_and_back(start_api, api_env: dict, tcp_proxy, make_user, api_clip) -> None:
    """Down at start: the API serves degraded, a new job waits queued; back: ready again, without restart.
    Lost while running: degraded again, reads and uploads still work."""
    target, template = redis_target(api_env["REDIS_URL"])
    proxy = tcp_proxy(target)
    proxy.cut()
    server = start_api({**api_env, "REDIS_URL": template.format(port=proxy.port)})
    user = await make_user("redis-outage", server=server)
    async with user.client() as client:
        assert (await client.get("/readyz")).json()["status"] == "degraded"
        project = (await client.post("/api/v1/projects", json={"name": "outage"})).json()["id"]
        upload = await client.post(f"/api/v1/projects/{project}/assets?filename=o.mp4&transcode=true",
                                   content=api_clip.read_bytes())
        assert upload.status_code == 201, upload.text
        assert upload.json()["job"]["status"] == "queued"
        proxy.restore()
        await wait_for(lambda: _ready_status(client, "ok"), 40, "readyz to see Redis back")
        proxy.cut()
        await wait_for(lambda: _ready_status(client, "degraded"), 10, "readyz to see Redis gone")
        assert (await client.get(f"/api/v1/projects/{project}/assets")).status_code == 200
        again = await client.post(f"/api/v1/projects/{project}/assets?filename=p.mp4",
                                  content=api_clip.read_bytes())
        assert again.status_code == 201, again.text
        await client.post(f"/api/v1/jobs/{upload.json()['job']['id']}/cancel")
    events = [r["event"] for r in server.log_records()]
    assert events.count("redis_unavailable") == 1 and events.count("redis_connected") == 1


async def _ready_status(client: httpx.AsyncClient, expected: str) -> bool:
    return (await client.get("/readyz")).json()["status"] == expected


async def _status(client: httpx.AsyncClient, path: str, expected: int) -> bool:
    return (await client.get(path)).status_code == expected


async def test_metrics_has_the_families(api: ApiServer, make_user) -> None:
    user = await make_user("metrics")
    async with user.client() as client:
        await client.get("/api/v1/projects")
        text = (await client.get("/metrics")).text
    for family in (
        "fluxstudio_http_requests_total",
        "fluxstudio_http_request_duration_seconds_bucket",
        "fluxstudio_upload_bytes_total",
        "fluxstudio_jobs{",
        "fluxstudio_queue_depth",
        "fluxstudio_queue_oldest_age_seconds",
        "fluxstudio_job_duration_seconds",
        "fluxstudio_collab_connections",
        "fluxstudio_database_up 1.0",
    ):
        assert family in text, family
    # by route template, not by path: ids never become label values
    assert 'route="/api/v1/projects"' in text
    assert 'fluxstudio_jobs{status="queued"}' in text


async def test_openapi_is_valid_and_lists_every_route(api: ApiServer) -> None:
    from fluxstudio.api.routes import API_OPERATIONS

    async with httpx.AsyncClient(base_url=api.url) as client:
        document = (await client.get("/openapi.json")).json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    for op in API_OPERATIONS:
        assert op.method.lower() in document["paths"][op.path], (op.method, op.path)
    contract = {  # API.md section 3 and section 5's room tokens
        ("post", "/projects"), ("get", "/projects"), ("get", "/projects/{project_id}"),
        ("post", "/projects/{project_id}/assets"), ("get", "/projects/{project_id}/assets"),
        ("post", "/projects/{project_id}/uploads"), ("put", "/uploads/{token}"),
        ("get", "/assets/{asset_id}"), ("delete", "/assets/{asset_id}"), ("post", "/assets/{asset_id}/jobs"),
        ("get", "/jobs"), ("get", "/jobs/{job_id}"), ("get", "/jobs/{job_id}/events"),
        ("post", "/jobs/{job_id}/cancel"), ("post", "/collab/tokens"),
    }
    listed = {(m, p.removeprefix("/api/v1")) for p, ops in document["paths"].items() for m in ops}
    assert contract <= listed, contract - listed
    job = document["components"]["schemas"]["Job"]
    assert set(job["required"]) >= {"id", "asset_id", "status", "progress", "attempts", "options"}
    upload = document["paths"]["/api/v1/uploads/{token}"]["put"]
    assert upload["security"] == [] and "410" in upload["responses"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
async def test_service_endpoints_need_no_token(api: ApiServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        assert (await client.get(path)).status_code == 200
