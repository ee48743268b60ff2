"""`fluxstudio import URL`: ask a running server to fetch a file from an http(s) URL into a new asset
(API.md §9). Prints the asset's id; with `--wait`, waits until it has landed (or failed) and says how."""

from __future__ import annotations

import asyncio
import sys
import time

from rich.console import Console

from fluxstudio.commands.upload import FluxClient
from fluxstudio.config import Settings

WAIT_EVERY_S = 1.0


async def import_url(
    settings: Settings,
    url: str,
    *,
    project: str,
    filename: str | None,
    transcode: bool,
    wait: bool,
    timeout_s: float = 3600.0,
) -> int:
    # The settings gate made sure of both (flags, environment, or the record of a running `up`).
    assert settings.server_url is not None and settings.server_token is not None
    server, token = settings.server_url, settings.server_token.get()
    console = Console(file=sys.stderr)
    async with FluxClient(server, token) as client:
        project_row = await client.ensure_project(project)
        body = {"url": url, "transcode": transcode, **({"filename": filename} if filename else {})}
        created = await client._json(
            await client.http.post(f"/projects/{project_row['id']}/imports", json=body)
        )
        asset = created["asset"]
        console.print(f"asset {asset['id']} importing")
        deadline = time.monotonic() + timeout_s
        while wait and asset["status"] == "importing" and time.monotonic() < deadline:
            await asyncio.sleep(WAIT_EVERY_S)  # polling the server's state, as a user would
            asset = await client.asset(asset["id"])
    print(asset["id"])
    if asset["status"] == "failed":
        error = asset.get("error") or {}
        console.print(f"import failed: {error.get('message', 'unknown reason')} ({error.get('code', '?')})")
        return 1
    if wait:
        console.print(f"asset {asset['id']} {asset['status']}, {asset['size_bytes']} bytes")
    return 0
