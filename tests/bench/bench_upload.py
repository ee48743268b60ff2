"""API memory and throughput while streaming a large upload, and the same over tus. Run by hand:

    FLUXSTUDIO_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        python -m tests.bench.bench_upload [--gib 2] [--valid] [--tus [--tus-chunk-mib N]]

With --tus the same body is also sent to `/api/v1/tus` (one POST, then PATCHes of --tus-chunk-mib, by
default one PATCH for the whole body as tus-js-client and tuspy send it), on the same server after the
streamed upload, and the two are printed side by side with ratios (tus / streamed).

A real API process (uvicorn serving create_app, as in the API tests) on a fresh migrated database; a raw
`POST /api/v1/projects/{id}/assets` whose body is generated on the fly in 1 MiB chunks (the client never
holds it either). The server's RSS is sampled every 20 ms from /proc; the figures are its growth over the
idle baseline (target <= 50 MiB) and the throughput.

Without --valid the body is not media: the server streams every byte to its temporary file, then the
probe rejects it (422). "Receive" is the time until the client has sent the last byte, "total" adds the
probe. With --valid the body is a faststart MP4 clip followed by padding, which ffmpeg reads past, so the
upload is accepted: "total" then also includes storing the source (a copy into local storage) and the
row. Needs about 2x the size in free disk with --valid.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import psutil

from fluxstudio.db.migrations import upgrade
from fluxstudio.studio.tokens import create_token
from tests.fixtures.media import make_clip_in
from tests.fixtures.platform import start_api_server
from tests.fixtures.services import with_database

CHUNK = 1024 * 1024
MIB = 1024 * 1024


class RssSampler:
    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return self.process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def body(total: int, head: bytes) -> Iterator[bytes]:
    block = os.urandom(CHUNK)  # one random block, repeated: no allocation per chunk
    yield head
    sent = len(head)
    while sent < total:
        n = min(CHUNK, total - sent)
        yield block[:n]
        sent += n


async def prepare(admin_url: str) -> tuple[str, str]:
    name = f"fluxstudio_bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(admin_url)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    url = with_database(admin_url, name)
    await asyncio.to_thread(upgrade, url)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    _, token = await create_token(pool, "bench", email="bench@example.com")
    await pool.close()
    return url, token


async def drop(admin_url: str, url: str) -> None:
    connection = await asyncpg.connect(admin_url)
    await connection.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1].split("?")[0]}" WITH (FORCE)')
    await connection.close()


@dataclass
class Measured:
    status: int
    code: str
    baseline: int
    peak: int
    receive_s: float
    total_s: float

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def streamed(client: httpx.Client, project: str, total: int, head: bytes, sampler: RssSampler) -> Measured:
    sent_at = 0.0

    def timed() -> Iterator[bytes]:
        nonlocal sent_at
        yield from body(total, head)
        sent_at = time.perf_counter()

    baseline = sampler.rss()
    sampler.peak = baseline
    started = time.perf_counter()
    response = client.post(f"/api/v1/projects/{project}/assets?filename=big.mp4", content=timed())
    finished = time.perf_counter()
    code = response.json().get("code", "") if response.status_code >= 400 else ""
    return Measured(response.status_code, code, baseline, sampler.peak, sent_at - started, finished - started)


def tus_upload(
    client: httpx.Client, project: str, total: int, head: bytes, sampler: RssSampler, chunk: int | None
) -> Measured:
    tus = {"Tus-Resumable": "1.0.0"}
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in
                    (("project_id", project), ("filename", "big.mp4")))  # fmt: skip
    baseline = sampler.rss()
    sampler.peak = baseline
    started = time.perf_counter()
    created = client.post(
        "/api/v1/tus", headers={**tus, "Upload-Length": str(total), "Upload-Metadata": meta}
    )
    url = created.headers["location"]
    stream, offset, sent_at = body(total, head), 0, 0.0
    pending = b""
    response = created
    while offset < total:
        size = min(chunk or total, total - offset)

        def part(size: int = size) -> Iterator[bytes]:
            nonlocal pending, sent_at
            left = size
            while left:
                piece = pending or next(stream)
                pending = piece[left:]
                yield piece[:left]
                left -= len(piece[:left])
            sent_at = time.perf_counter()

        headers = {**tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
                   "Content-Length": str(size)}  # fmt: skip
        response = client.patch(url, headers=headers, content=part())
        if response.status_code != 204:
            break
        offset += size
    finished = time.perf_counter()
    code = response.json().get("code", "") if response.status_code >= 400 else ""
    return Measured(response.status_code, code, baseline, sampler.peak, sent_at - started, finished - started)


def show(name: str, m: Measured, total: int) -> None:
    rss = f"RSS idle {m.baseline / MIB:6.1f} MiB, peak {m.peak / MIB:6.1f} MiB"
    rss += f", growth {m.growth / MIB:5.1f} MiB"
    receive = f"receive {m.receive_s:5.1f} s = {total / MIB / m.receive_s:4.0f} MiB/s"
    whole = f"total {m.total_s:5.1f} s = {total / MIB / m.total_s:4.0f} MiB/s"
    print(f"{name:>9}: {m.status} {m.code:<16} {rss}; {receive}; {whole}")


def run(
    gib: float, valid: bool, admin_url: str, redis_url: str, tus: bool, tus_chunk_mib: int | None
) -> None:
    total = int(gib * 1024**3)
    work = Path(tempfile.mkdtemp(prefix="fluxstudio-bench-upload-"))
    url, token = asyncio.run(prepare(admin_url))
    env = {
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "FLUXSTUDIO_HOME": str(work / "home"),
        "STORAGE_URL": (work / "media").as_uri(),
        "MAX_UPLOAD_BYTES": str(total + MIB),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "warning",
    }
    server = start_api_server(env, work / "api.log")
    try:
        head = b""
        if valid:
            clip = make_clip_in(work, "head", duration=2.0, extra=("-movflags", "+faststart"))
            head = clip.read_bytes()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=600) as client:
            project = client.post("/api/v1/projects", json={"name": "bench"}).json()["id"]
            client.get("/api/v1/projects")  # warm: imports and first-request allocations are not the upload's
            client.options("/api/v1/tus")
            with RssSampler(server.process.pid) as sampler:
                plain = streamed(client, project, total, head, sampler)
                chunk = tus_chunk_mib * MIB if tus_chunk_mib else None
                resumable = tus_upload(client, project, total, head, sampler, chunk) if tus else None
        print(f"body: {total / MIB:.0f} MiB ({'faststart MP4 + padding' if valid else 'not media'})")
        show("streamed", plain, total)
        if resumable is not None:
            show("tus", resumable, total)
            tus_mib, plain_mib = resumable.growth / MIB, plain.growth / MIB
            patch = f"{tus_chunk_mib} MiB" if tus_chunk_mib else "whole body"
            print(
                f"tus / streamed: RSS peak {resumable.peak / plain.peak:.2f}x (growth {tus_mib:.1f} vs"
                f" {plain_mib:.1f} MiB), receive throughput {plain.receive_s / resumable.receive_s:.2f}x,"
                f" total throughput {plain.total_s / resumable.total_s:.2f}x (PATCH size: {patch})"
            )
    finally:
        server.stop()
        asyncio.run(drop(admin_url, url))
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--valid", action="store_true", help="a readable MP4 head, so the upload is accepted")
    parser.add_argument("--tus", action="store_true", help="also upload the same body over tus, side by side")
    parser.add_argument("--tus-chunk-mib", type=int, default=None, help="PATCH size (default: one PATCH)")
    parser.add_argument(
        "--redis-url", default=os.environ.get("FLUXSTUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    admin = os.environ.get("FLUXSTUDIO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    run(args.gib, args.valid, admin, args.redis_url, args.tus, args.tus_chunk_mib)


if __name__ == "__main__":
    main()
