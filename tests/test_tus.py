"""tus 1.0.0 at /api/v1/tus through real servers and the real tuspy client: the protocol's answers, an
upload becoming an asset, resuming after a killed connection, after an API restart and on a second
replica over S3 (moto), a wrong offset, the size limit, another user's upload, termination, unreadable
media, expiry and concurrent PATCHes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from fluxstudio.storage import LocalStorage, S3Storage
from fluxstudio.studio import tus
from tests.fixtures.media import run_ffmpeg
from tests.fixtures.platform import ApiServer, ApiUser, wait_for
from tests.test_api_uploads import new_project

TUS = "/api/v1/tus"
V = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s clip of noise, about 15 MB: several S3 parts of 8 MiB."""
    path = tmp_path_factory.mktemp("tus-clips") / "noise.mp4"
    run_ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30,noise=alls=80:allf=t", "-f", "lavfi",
        "-i", "sine=f=440:r=48000", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "10",
        "-pix_fmt", "yuv420p", "-c:a", "aac", str(path),
    )  # fmt: skip
    assert path.stat().st_size > 10 * 1024 * 1024
    return path


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def create(client: httpx.AsyncClient, project: str, length: int, **extra: str) -> httpx.Response:
    headers = {**V, "Upload-Length": str(length), "Upload-Metadata": metadata(project_id=project, **extra)}
    return await client.post(TUS, headers=headers)


async def patch(client: httpx.AsyncClient, url: str, offset: int, data: bytes) -> httpx.Response:
    headers = {**V, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
    return await client.patch(url, headers=headers, content=data)


def tus_client(server: ApiServer, user: ApiUser) -> TusClient:
    return TusClient(server.url + TUS, headers=user.headers)


async def source_digest(client: httpx.AsyncClient, pool: asyncpg.Pool, storage, asset_id: str) -> str:
    key = await pool.fetchval("SELECT source_key FROM assets WHERE id = $1", asset_id)
    digest = hashlib.sha256()
    async for chunk in storage.open(key):
        digest.update(chunk)
    return digest.hexdigest()


async def test_options_advertise_version_extensions_and_limit(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.options(TUS)
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-resumable"] == "1.0.0"
    assert set(response.headers["tus-extension"].split(",")) == {
        "creation", "creation-with-upload", "termination", "expiration",
    }  # fmt: skip
    assert int(response.headers["tus-max-size"]) == 5 * 1024**3


async def test_tuspy_upload_becomes_an_asset_with_a_job(
    api: ApiServer, make_user, api_clip: Path, pool: asyncpg.Pool, media_dir: Path
) -> None:
    user = await make_user("tus")
    async with user.client() as client:
        project = await new_project(client)
        uploader = tus_client(api, user).uploader(
            file_path=str(api_clip), chunk_size=64 * 1024,
            metadata={"project_id": project, "filename": "clip.mp4", "transcode": "true"},
        )  # fmt: skip
        await asyncio.to_thread(uploader.upload)
        headers = uploader.request.response_headers
        asset_id, job_id = headers["asset-id"], headers["job-id"]
        assert headers["upload-offset"] == str(api_clip.stat().st_size)
        asset = (await client.get(f"/api/v1/assets/{asset_id}")).json()
        assert asset["filename"] == "clip.mp4" and asset["media"]["has_video"] and asset["error"] is None
        assert asset["size_bytes"] == api_clip.stat().st_size
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        assert job["asset_id"] == asset_id
        assert await source_digest(client, pool, LocalStorage(media_dir), asset_id) == sha256(api_clip)
        # The upload's own bytes are gone once the asset holds them; a HEAD still tells the asset.
        upload_id = uploader.url.rsplit("/", 1)[1]
        assert not (media_dir / "tus" / upload_id).exists()
        head = await client.head(uploader.url, headers=V)
        assert head.status_code == 200 and head.headers["asset-id"] == asset_id


async def test_creation_with_upload_and_head(api: ApiServer, make_user, api_clip: Path) -> None:
    user = await make_user("tus")
    data = api_clip.read_bytes()
    async with user.client() as client:
        project = await new_project(client)
        headers = {
            **V, "Upload-Length": str(len(data)), "Content-Type": "application/offset+octet-stream",
            "Upload-Metadata": metadata(project_id=project, filename="clip.mp4"),
        }  # fmt: skip
        created = await client.post(TUS, headers=headers, content=data[:1000])
        assert created.status_code == 201, created.text
        assert created.headers["upload-offset"] == "1000" and created.headers["upload-expires"]
        url = created.headers["location"]
        assert url.startswith(api.url + TUS + "/tus_")
        head = await client.head(url, headers=V)
        assert head.headers["upload-offset"] == "1000" and head.headers["upload-length"] == str(len(data))
        assert head.headers["cache-control"] == "no-store"
        done = await patch(client, url, 1000, data[1000:])
        assert done.status_code == 204 and "asset-id" in done.headers and "job-id" not in done.headers


async def test_resume_after_a_killed_connection(
    api: ApiServer, make_user, big_clip: Path, pool: asyncpg.Pool, media_dir: Path
) -> None:
    user = await make_user("tus")
    data = big_clip.read_bytes()
    async with user.client() as client:
        project = await new_project(client)
        url = (await create(client, project, len(data), filename="noise.mp4")).headers["location"]
        sent = 3 * 1024 * 1024 + 12345
        await asyncio.to_thread(_send_and_cut, url, user.token, data[:sent], len(data))
        # The server keeps what arrived; HEAD waits for the cut PATCH to have stored it.
        await wait_for(
            lambda: _offset(client, url, sent), 60, "the offset of the bytes that arrived before the cut"
        )
        uploader = tus_client(api, user).uploader(file_path=str(big_clip), url=url, chunk_size=4 * 1024**2)
        assert uploader.offset == sent
        await asyncio.to_thread(uploader.upload)
        asset_id = uploader.request.response_headers["asset-id"]
        assert await source_digest(client, pool, LocalStorage(media_dir), asset_id) == sha256(big_clip)


async def _offset(client: httpx.AsyncClient, url: str, expected: int) -> bool:
    head = await client.head(url, headers=V)
    return head.headers.get("upload-offset") == str(expected)


def _send_and_cut(url: str, token: str, body: bytes, length: int) -> None:
    """A PATCH announcing the whole rest of the file, whose client dies after sending `body`."""
    parts = urlsplit(url)
    request = (
        f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(request + body)  # then closed as a killed process's socket is: the kernel sends FIN


async def test_resume_after_an_api_restart(
    fresh_api, api_env: dict[str, str], make_user, api_clip: Path, pool: asyncpg.Pool, media_dir: Path
) -> None:
    first = fresh_api(api_env)
    user = await make_user("tus", first)
    async with user.client() as client:
        project = await new_project(client)
    uploader = tus_client(first, user).uploader(
        file_path=str(api_clip), chunk_size=20_000, metadata={"project_id": project, "filename": "a.mp4"}
    )
    half = api_clip.stat().st_size // 2
    await asyncio.to_thread(uploader.upload, half)
    path = urlsplit(uploader.url).path
    first.stop()
    second = fresh_api(api_env)
    resumed = tus_client(second, user).uploader(file_path=str(api_clip), url=second.url + path)
    assert resumed.offset >= half
    await asyncio.to_thread(resumed.upload)
    asset_id = resumed.request.response_headers["asset-id"]
    async with httpx.AsyncClient(base_url=second.url, headers=user.headers) as client:
        assert (await client.get(f"/api/v1/assets/{asset_id}")).json()["status"] == "uploaded"
        assert await source_digest(client, pool, LocalStorage(media_dir), asset_id) == sha256(api_clip)


async def test_resume_on_a_second_replica_over_s3(
    fresh_api, api_env: dict[str, str], s3_server, make_user, big_clip: Path, pool: asyncpg.Pool
) -> None:
    """Small PATCHes (1 MiB, under S3's 5 MiB part floor) on replica A, the rest on replica B."""
    bucket = await s3_server.create_bucket()
    env = {**api_env, **s3_server.environ(bucket)}
    a, b = fresh_api(env), fresh_api(env)
    user = await make_user("tus", a)
    async with user.client() as client:
        project = await new_project(client)
    uploader = tus_client(a, user).uploader(
        file_path=str(big_clip), chunk_size=1024 * 1024, metadata={"project_id": project, "filename": "n.mp4"}
    )
    await asyncio.to_thread(uploader.upload, 9 * 1024 * 1024 + 7)
    upload_id = uploader.url.rsplit("/", 1)[1]
    row = await pool.fetchrow('SELECT "offset", parts, tail_bytes FROM tus_uploads WHERE id = $1', upload_id)
    assert len(row["parts"]) == 1 and row["parts"][0]["size"] == tus.PART_BYTES  # one full part...
    assert row["tail_bytes"] == row["offset"] - tus.PART_BYTES > 0  # ...and the rest held as the tail
    resumed = tus_client(b, user).uploader(file_path=str(big_clip), url=f"{b.url}{TUS}/{upload_id}")
    assert resumed.offset == row["offset"]
    await asyncio.to_thread(resumed.upload)
    asset_id = resumed.request.response_headers["asset-id"]
    storage = S3Storage(s3_server.settings(bucket))
    async with storage, user.client() as client:
        assert await source_digest(client, pool, storage, asset_id) == sha256(big_clip)
        assert await storage.list("tus/") == []
        s3 = await storage._client()
        assert not (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads")


async def test_tuspy_sees_409_413_and_404(api: ApiServer, make_user, api_clip: Path, tmp_path: Path) -> None:
    """The same three refusals as the real client meets them."""
    user, other = await make_user("tus"), await make_user("intruder")
    async with user.client() as client:
        project = await new_project(client)
    meta = {"project_id": project, "filename": "clip.mp4"}
    uploader = tus_client(api, user).uploader(file_path=str(api_clip), chunk_size=10_000, metadata=meta)
    await asyncio.to_thread(uploader.upload_chunk)
    assert uploader.offset == 10_000
    uploader.offset = 0  # a client that lost track of where it was
    with pytest.raises(TusUploadFailed) as wrong:
        await asyncio.to_thread(uploader.upload_chunk)
    assert wrong.value.status_code == 409
    with pytest.raises(TusCommunicationError) as stranger:
        tus_client(api, other).uploader(file_path=str(api_clip), url=uploader.url)
    assert stranger.value.status_code == 404
    huge = tmp_path / "huge.mp4"
    with huge.open("wb") as sparse:
        sparse.truncate(5 * 1024**3 + 1)  # sparse: tuspy only needs its size to create the upload
    with pytest.raises(TusCommunicationError) as too_big:
        await asyncio.to_thread(tus_client(api, user).uploader(file_path=str(huge), metadata=meta).upload)
    assert too_big.value.status_code == 413


async def test_a_worker_sweeps_expired_uploads(
    api: ApiServer, api_env: dict[str, str], make_user, media_dir: Path, start_worker, pool: asyncpg.Pool
) -> None:
    user = await make_user("tus")
    async with user.client() as client:
        project = await new_project(client)
        url = (await create(client, project, 100)).headers["location"]
        await patch(client, url, 0, b"x" * 10)
    upload_id = url.rsplit("/", 1)[1]
    assert (media_dir / "tus" / upload_id / "data").exists()
    await expire(pool, upload_id)
    start_worker(api_env)  # a worker's housekeeping runs at start, then every 30 s
    # The bytes go first, then the row: once the row is gone, both are.
    await wait_for(lambda: _gone(pool, upload_id), 120, "the sweep of the upload")
    assert not (media_dir / "tus" / upload_id).exists()


async def _gone(pool: asyncpg.Pool, upload_id: str) -> bool:
    return await pool.fetchval("SELECT count(*) FROM tus_uploads WHERE id = $1", upload_id) == 0


async def test_wrong_offset_is_409(api: ApiServer, make_user) -> None:
    user = await make_user("tus")
    async with user.client() as client:
        project = await new_project(client)
        url = (await create(client, project, 100)).headers["location"]
        assert (await patch(client, url, 0, b"x" * 10)).status_code == 204
        wrong = await patch(client, url, 0, b"x" * 10)
        assert wrong.status_code == 409 and wrong.headers["tus-resumable"] == "1.0.0"
        assert "offset 10" in wrong.json()["detail"]
        assert (await client.head(url, headers=V)).headers["upload-offset"] == "10"


async def test_over_the_limit_is_413_at_creation(api: ApiServer, make_user) -> None:
    user = await make_user("tus")
    async with user.client() as client:
        project = await new_project(client)
        response = await create(client, project, 5 * 1024**3 + 1)
        assert response.status_code == 413 and response.json()["code"] == "too_large"


async def test_someone_elses_upload_is_404(api: ApiServer, make_user, media_dir: Path) -> None:
    owner, other = await make_user("tus"), await make_user("intruder")
    async with owner.client() as client, other.client() as stranger:
        project = await new_project(client)
        url = (await create(client, project, 100)).headers["location"]
        assert (await stranger.head(url, headers=V)).status_code == 404
        assert (await patch(stranger, url, 0, b"x" * 10)).status_code == 404
        assert (await stranger.delete(url, headers=V)).status_code == 404
        assert (await create(stranger, project, 100)).status_code == 404  # their project either
        assert (await client.head(url, headers=V)).headers["upload-offset"] == "0"


async def test_protocol_errors(api: ApiServer, make_user) -> None:
    user = await make_user("tus")
    async with user.client() as client:
        project = await new_project(client)
        assert (await client.post(TUS, headers={"Upload-Length": "10"})).status_code == 412
        url = (await create(client, project, 100)).headers["location"]
        bad_type = await client.patch(url, headers={**V, "Upload-Offset": "0"}, content=b"x")
        assert bad_type.status_code == 415
        too_much = await patch(client, url, 0, b"x" * 101)
        assert too_much.status_code == 422
        assert (await client.post(TUS, headers={**V, "Upload-Length": "10"})).status_code == 422
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        assert (await anonymous.post(TUS, headers={**V, "Upload-Length": "10"})).status_code == 401


async def test_termination_deletes_bytes_and_state(api: ApiServer, make_user, media_dir: Path) -> None:
    user = await make_user("tus")
    async with user.client() as client:
        project = await new_project(client)
        url = (await create(client, project, 100)).headers["location"]
        await patch(client, url, 0, b"x" * 10)
        upload_id = url.rsplit("/", 1)[1]
        assert (media_dir / "tus" / upload_id / "data").exists()
        assert (await client.delete(url, headers=V)).status_code == 204
        assert not (media_dir / "tus" / upload_id).exists()
        assert (await client.head(url, headers=V)).status_code == 404


async def test_unreadable_media_is_422_with_nothing_kept(
    api: ApiServer, make_user, media_dir: Path, pool: asyncpg.Pool
) -> None:
    user = await make_user("tus")
    junk = b"this is not a video " * 500
    async with user.client() as client:
        project = await new_project(client)
        url = (await create(client, project, len(junk), filename="junk.mp4")).headers["location"]
        assert (await patch(client, url, 0, junk[:5000])).status_code == 204
        final = await patch(client, url, 5000, junk[5000:])
        assert final.status_code == 422 and final.json()["code"] == "unreadable_media"
        upload_id = url.rsplit("/", 1)[1]
        assert not (media_dir / "tus" / upload_id).exists()
        assert await pool.fetchval("SELECT count(*) FROM tus_uploads WHERE id = $1", upload_id) == 0
        assert (await client.get(f"/api/v1/projects/{project}/assets")).json()["items"] == []


async def test_expired_uploads_are_swept(
    api: ApiServer, make_user, media_dir: Path, pool: asyncpg.Pool
) -> None:
    user = await make_user("tus")
    async with user.client() as client:
        project = await new_project(client)
        url = (await create(client, project, 100)).headers["location"]
        await patch(client, url, 0, b"x" * 10)
        upload_id = url.rsplit("/", 1)[1]
        await pool.execute(
            "UPDATE tus_uploads SET expires_at = now() - interval '1 s' WHERE id = $1", upload_id
        )
        assert (await client.head(url, headers=V)).status_code == 404  # expired: gone at once
        assert await tus.sweep_expired(pool, LocalStorage(media_dir)) >= 1
        assert not (media_dir / "tus" / upload_id).exists()
        assert await pool.fetchval("SELECT count(*) FROM tus_uploads WHERE id = $1", upload_id) == 0


async def test_expired_s3_upload_aborts_its_parts(s3_settings, pool: asyncpg.Pool, make_user) -> None:
    user = await make_user("tus")
    storage = S3Storage(s3_settings)
    async with storage, user.client() as client:
        project = await new_project(client)
        url = (await create(client, project, 100)).headers["location"]
        upload_id = url.rsplit("/", 1)[1]
        # That upload lives on the session's local storage; this one is made on S3 by the same rules.
        await pool.execute("DELETE FROM tus_uploads WHERE id = $1", upload_id)
        from fluxstudio.studio.users import User

        owner = User(id=await pool.fetchval("SELECT user_id FROM projects WHERE id = $1", project), email="")
        made = await tus.create_upload(
            pool, storage, owner, length=100, metadata_header=metadata(project_id=project), max_bytes=10**9
        )
        s3 = await storage._client()
        assert len((await s3.list_multipart_uploads(Bucket=s3_settings.bucket))["Uploads"]) == 1
        await pool.execute(
            "UPDATE tus_uploads SET expires_at = now() - interval '1 s' WHERE id = $1", made.id
        )
        assert await tus.sweep_expired(pool, storage) >= 1
        assert not (await s3.list_multipart_uploads(Bucket=s3_settings.bucket)).get("Uploads")


async def expire(pool: asyncpg.Pool, upload_id: str) -> None:
    await pool.execute("UPDATE tus_uploads SET expires_at = now() - interval '1 s' WHERE id = $1", upload_id)


async def test_concurrent_patches_move_the_offset_once(api: ApiServer, make_user) -> None:
    user = await make_user("tus")
    async with user.client() as client:
        project = await new_project(client)
        url = (await create(client, project, 10_000_000)).headers["location"]
        data = b"y" * 2_000_000
        answers = await asyncio.gather(*(patch(client, url, 0, data) for _ in range(4)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [204, 409, 409, 409], codes
        assert (await client.head(url, headers=V)).headers["upload-offset"] == str(len(data))


async def test_tus_js_client_resumes_after_abort(
    api: ApiServer, make_user, big_clip: Path, js_clients: Path
) -> None:
    user = await make_user("tus")
    async with user.client() as client:
        project = await new_project(client)
    folder = js_clients
    proc = await asyncio.create_subprocess_exec(
        "node", str(folder / "tus_client.mjs"), api.url + TUS, user.token, project, str(big_clip),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=folder,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, err.decode()
    lines = dict(line.split("=", 1) for line in out.decode().split())
    # Aborted in the middle of a chunk: the server kept what had arrived, at least the accepted chunks.
    assert int(lines["aborted_at"]) >= 2 * 1024 * 1024
    assert int(lines["resumed_from"]) >= int(lines["aborted_at"])
    async with user.client() as client:
        asset = (await client.get(f"/api/v1/assets/{lines['asset_id']}")).json()
        assert asset["size_bytes"] == big_clip.stat().st_size and asset["status"] == "uploaded"
