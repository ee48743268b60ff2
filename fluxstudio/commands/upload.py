"""`fluxstudio upload FILE`: a client of a running server. Streams the file, starts a transcode, and with
`--wait` follows the job's event stream with a progress bar and prints the playback URL on stdout.

The server and token come from the settings: --server/--token, FLUXSTUDIO_SERVER/FLUXSTUDIO_TOKEN, or the
record of a `fluxstudio up` running on this machine, so beside `up` no flags are needed. A server that
cannot be reached is one line and exit status 1, not a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from fluxstudio.commands import resumable
from fluxstudio.commands.bars import speed_text, transcode_bar
from fluxstudio.config import Settings
from fluxstudio.errors import FluxError, Invalid


class ApiError(FluxError):
    """The server answered with a problem document."""


class FluxClient:
    """The few calls the CLI makes, over one HTTP connection pool."""

    def __init__(self, server: str, token: str) -> None:
        self.server = server
        self.resumed_from = 0
        self.http = httpx.AsyncClient(
            base_url=server.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30.0, read=None),
        )

    async def __aenter__(self) -> FluxClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.http.aclose()

    async def _json(self, response: httpx.Response) -> Any:
        if response.is_error:
            await response.aread()
            try:
                problem = response.json()
                detail = problem.get("detail") or problem.get("title")
            except ValueError:
                detail = response.text[:200]
            raise ApiError(
                f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}"
            )
        return response.json()

    async def ensure_project(self, name: str) -> dict[str, Any]:
        items = (await self._json(await self.http.get("/projects")))["items"]
        for project in items:
            if project["name"] == name:
                return project
        return await self._json(await self.http.post("/projects", json={"name": name}))

    async def upload(
        self,
        project_id: str,
        path: Path,
        *,
        transcode: bool,
        on_bytes: Callable[[int], None],
        state: Path | None = None,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Send the file with tus (resumable; see resumable.py), then read back the asset and its job."""
        metadata = {"project_id": project_id, "filename": path.name, "transcode": str(transcode).lower()}
        landed = await resumable.send(
            self.http, "tus", path, metadata=metadata, state=state, resume=resume, on_bytes=on_bytes
        )
        self.resumed_from = landed.resumed_from
        job = await self._json(await self.http.get(f"/jobs/{landed.job_id}")) if landed.job_id else None
        return {"asset": await self.asset(landed.asset_id), "job": job}

    async def follow(self, job_id: str, on_progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Follow the job's events until `end`; returns the finished job."""
        async with aconnect_sse(self.http, "GET", f"/jobs/{job_id}/events") as source:
            if source.response.is_error:
                await self._json(source.response)
            async for event in source.aiter_sse():
                data = event.json()
                if event.event == "progress":
                    on_progress(data)
                elif event.event == "end":
                    return data
        return await self._json(await self.http.get(f"/jobs/{job_id}"))

    async def asset(self, asset_id: str) -> dict[str, Any]:
        return await self._json(await self.http.get(f"/assets/{asset_id}"))


async def upload_and_follow(
    client: FluxClient,
    path: Path,
    *,
    project: str,
    wait: bool,
    console: Console,
    state: Path | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Upload with a byte progress bar, then (with wait) follow the transcode with a second bar."""
    project_row = await client.ensure_project(project)
    columns = (
        TextColumn("uploading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("upload", total=path.stat().st_size)
        created = await client.upload(
            project_row["id"],
            path,
            transcode=True,
            on_bytes=lambda n: bar.advance(task, n),
            state=state,
            resume=resume,
        )
    if client.resumed_from:
        console.print(f"resumed at byte {client.resumed_from}")
    job = created["job"]
    console.print(f"asset {created['asset']['id']}, job {job['id']} {job['status']}")
    if not wait:
        return created
    with transcode_bar(console) as bar:
        task = bar.add_task("transcode", total=1.0, speed="")

        def show(event: dict[str, Any]) -> None:
            bar.update(task, completed=event["progress"], speed=speed_text(event.get("speed")))

        job = await client.follow(job["id"], show)
        if job["status"] == "succeeded":
            bar.update(task, completed=1.0)
    created["job"] = job
    created["asset"] = await client.asset(created["asset"]["id"])
    return created


async def upload_file(
    settings: Settings, file: str, *, project: str, wait: bool, resume: bool = False
) -> int:
    path = Path(file)
    if not path.is_file():
        raise Invalid(f"{file} is not a file")
    # The settings gate made sure of both (flags, environment, or the record of a running `up`).
    assert settings.server_url is not None and settings.server_token is not None
    server, token = settings.server_url, settings.server_token.get()
    console = Console(file=sys.stderr)
    try:
        async with FluxClient(server, token) as client:
            state = resumable.state_path(settings.home, server, path)
            result = await upload_and_follow(
                client, path, project=project, wait=wait, console=console, state=state, resume=resume
            )
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise FluxError(f"cannot reach the server at {server} ({reason}); is it running?") from None
    job = result["job"]
    if not wait:
        print(job["id"])
        return 0
    if job["status"] != "succeeded":
        error = (job.get("error") or {}).get("message", "")
        console.print(f"job {job['id']} {job['status']}: {escape(error)}", soft_wrap=True)
        return 1
    print(result["asset"]["playback_url"])
    return 0
