"""`fluxstudio upload --resume` and `fluxstudio import` as a user runs them: real processes against a real
server. The interrupted run is the CLI's own transfer code, stopped mid-body as Ctrl-C would stop it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxstudio.commands import resumable
from fluxstudio.commands.upload import FluxClient
from tests.fixtures.platform import ApiServer
from tests.fixtures.receiver import Answer, Receiver
from tests.test_api_uploads import new_project
from tests.test_cli import fluxstudio
from tests.test_tus import big_clip

_FIXTURES = (big_clip,)

ALLOW_LOOPBACK = {"IMPORT_ALLOWED_NETWORKS": "127.0.0.1/32"}


class Interrupted(Exception):
    pass


def cli_env(server: ApiServer, token: str, home: Path) -> dict[str, str]:
    return {"FLUXSTUDIO_SERVER": server.url, "FLUXSTUDIO_TOKEN": token, "FLUXSTUDIO_HOME": str(home)}


async def test_upload_resumes_an_interrupted_run(
    api: ApiServer,
    make_user,
    big_clip: Path,
    tmp_path: Path,
) -> None:
    user = await make_user("cli")
    async with user.client() as client:
        project = (await client.post("/api/v1/projects", json={"name": "uploads"})).json()["id"]
    state = resumable.state_path(tmp_path, api.url, big_clip)
    sent = 0

    def stop_after_4_mib(n: int) -> None:
        nonlocal sent
        sent += n
        if sent > 4 * 1024 * 1024:
            raise Interrupted

    async with FluxClient(api.url, user.token) as client:
        with pytest.raises(Interrupted):
            await client.upload(project, big_clip, transcode=True, on_bytes=stop_after_4_mib, state=state)
    assert state.is_file()
    done = fluxstudio(
        "upload", str(big_clip), "--resume", cwd=tmp_path, env=cli_env(api, user.token, tmp_path)
    )
    assert done.returncode == 0, done.stderr
    resumed = int(done.stderr.split("resumed at byte ")[1].split()[0])
    assert 0 < resumed <= 4 * 1024 * 1024 + resumable.CHUNK
    assert not state.exists()
    async with user.client() as client:
        job = (await client.get(f"/api/v1/jobs/{done.stdout.strip()}")).json()
        asset = (await client.get(f"/api/v1/assets/{job['asset_id']}")).json()
    assert asset["size_bytes"] == big_clip.stat().st_size and asset["project_id"] == project


async def test_import_waits_for_the_file_and_reports_failures(
    fresh_api, api_env, make_user, receiver, start_worker, api_clip: Path, tmp_path: Path
) -> None:
    env = {**api_env, **ALLOW_LOOPBACK}
    api = fresh_api(env)
    start_worker(env)
    files: Receiver = receiver()
    clip = api_clip.read_bytes()
    files.routes["/clip.mp4"] = lambda: Answer(200, clip)
    files.routes["/gone.mp4"] = lambda: Answer(404)
    user = await make_user("cli", api)
    async with user.client() as client:
        await new_project(client, "imports")
    run_env = cli_env(api, user.token, tmp_path)
    ok = fluxstudio(
        "import", f"{files.url}/clip.mp4", "--project", "imports", "--wait", cwd=tmp_path, env=run_env
    )
    assert ok.returncode == 0, ok.stderr
    async with user.client() as client:
        asset = (await client.get(f"/api/v1/assets/{ok.stdout.strip()}")).json()
    assert asset["status"] == "uploaded" and asset["size_bytes"] == len(clip)
    failed = fluxstudio("import", f"{files.url}/gone.mp4", "--wait", cwd=tmp_path, env=run_env)
    assert failed.returncode == 1 and "404" in failed.stderr
    refused = fluxstudio("import", "http://169.254.169.254/latest", cwd=tmp_path, env=run_env)
    assert refused.returncode != 0 and "link-local" in refused.stderr
