"""The transfer part of `fluxstudio upload`: tus 1.0.0 over httpx, resumable with `--resume`.

The upload's URL is remembered in FLUXSTUDIO_HOME/uploads/<fingerprint>.json (the fingerprint covers the
server, the file's absolute path, size and modification time), written as soon as the server has made
the upload, and deleted once the last byte has landed. `--resume` asks the server for the offset of the
remembered upload (HEAD) and sends the rest; a remembered upload that has expired, or none, means a new
one. The body is streamed from the file in one PATCH; if the connection drops, the server keeps what it
received, so the next `--resume` loses at most what was in flight.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from fluxstudio.errors import FluxError

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = 1024 * 1024


class TransferError(FluxError):
    """The server refused the transfer (its problem's detail is the message)."""


@dataclass(frozen=True)
class Landed:
    asset_id: str
    job_id: str | None
    resumed_from: int


def _metadata(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def state_path(home: Path, server: str, path: Path) -> Path:
    st = path.stat()
    key = f"{server}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return home / "uploads" / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def _refused(response: httpx.Response, what: str) -> TransferError:
    try:
        detail = response.json().get("detail") or response.reason_phrase
    except ValueError:
        detail = response.reason_phrase
    return TransferError(f"{what}: {response.status_code} {detail}")


async def _offset(http: httpx.AsyncClient, url: str) -> int | None:
    """The server's offset of a remembered upload; None when it is gone (expired, finished, deleted)."""
    response = await http.head(url, headers=TUS)
    if response.status_code in (404, 410) or "asset-id" in response.headers:
        return None
    if response.is_error:
        raise _refused(response, "resuming the upload")
    return int(response.headers["upload-offset"])


async def send(
    http: httpx.AsyncClient,
    tus_url: str,
    path: Path,
    *,
    metadata: dict[str, str],
    state: Path | None,
    resume: bool,
    on_bytes: Callable[[int], None],
) -> Landed:
    """Upload `path` to the tus endpoint `tus_url`, resuming the remembered upload when `resume`."""
    size = path.stat().st_size
    url, offset = None, 0
    if resume and state is not None and state.is_file():
        url = json.loads(state.read_text())["url"]
        offset = await _offset(http, url)
        if offset is None:
            url, offset = None, 0
    if url is None:
        headers = {**TUS, "Upload-Length": str(size), "Upload-Metadata": _metadata(metadata)}
        created = await http.post(tus_url, headers=headers)
        if created.status_code != 201:
            raise _refused(created, "creating the upload")
        url = str(created.url.join(created.headers["location"]))
        if state is not None:  # remembered for --resume
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(json.dumps({"url": url, "file": str(path.resolve())}))
    on_bytes(offset)
    resumed_from = offset

    async def body() -> AsyncIterator[bytes]:
        with path.open("rb") as source:
            source.seek(offset)
            while chunk := source.read(CHUNK):
                on_bytes(len(chunk))
                yield chunk

    headers = {
        **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(size - offset),
    }  # fmt: skip
    response = await http.patch(url, headers=headers, content=body())
    if response.status_code != 204:
        raise _refused(response, "sending the file")
    if state is not None:
        with contextlib.suppress(OSError):
            state.unlink()
    return Landed(response.headers["asset-id"], response.headers.get("job-id"), resumed_from)
