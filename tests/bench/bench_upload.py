"""API memory and throughput while streaming a large upload. Run by hand, not by pytest:

    FLUXSTUDIO_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        python -m tests.bench.bench_upload [--gib 2] [--valid]

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
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
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


def run(gib: float, valid: bool, admin_url: str, redis_url: str) -> None:
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
            sampler = RssSampler(server.process.pid)
            baseline = sampler.rss()
            sent_at = 0.0

            def timed() -> Iterator[bytes]:
                nonlocal sent_at
                yield from body(total, head)
                sent_at = time.perf_counter()

            with sampler:
                started = time.perf_counter()
                response = client.post(f"/api/v1/projects/{project}/assets?filename=big.mp4", content=timed())
                finished = time.perf_counter()
        receive_s, total_s = sent_at - started, finished - started
        print(f"body: {total / MIB:.0f} MiB ({'faststart MP4 + padding' if valid else 'not media'})")
        code = response.json().get("code", "") if response.status_code >= 400 else ""
        print(f"answer: {response.status_code} {code}")
        print(
            f"API RSS: idle {baseline / MIB:.1f} MiB, peak {sampler.peak / MIB:.1f} MiB, "
            f"growth {(sampler.peak - baseline) / MIB:.1f} MiB (target <= 50)"
        )
        steps = "probe and store" if valid else "probe"
        print(
            f"receive: {receive_s:.1f} s = {total / MIB / receive_s:.0f} MiB/s; "
            f"total with {steps}: {total_s:.1f} s = {total / MIB / total_s:.0f} MiB/s"
        )
    finally:
        server.stop()
        asyncio.run(drop(admin_url, url))
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--valid", action="store_true", help="a readable MP4 head, so the upload is accepted")
    parser.add_argument(
        "--redis-url", default=os.environ.get("FLUXSTUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    admin = os.environ.get("FLUXSTUDIO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    run(args.gib, args.valid, admin, args.redis_url)


if __name__ == "__main__":
    main()
