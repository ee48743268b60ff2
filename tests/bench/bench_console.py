"""The console's first load, its time to interactive, and comment fan-out. Run by hand, not by pytest:

    python -m tests.bench.bench_console [--rounds 5] [--comments 40] [--database-url URL] [--redis-url URL]

Real processes throughout: two API replicas (uvicorn serving create_app, started as the API tests start
them) and one worker, on a throwaway PostgreSQL database and the given Redis; Debian's Chromium driven by
Playwright over loopback. The machine is shared with other work: read the figures as upper bounds.

1. First-load bytes: a cold browser context opens the sign-in link, then a ready asset's review view;
   we add up what the network carried for the console itself (HTML, ES modules, CSS, icon: compressed,
   as transferred) and, apart, the media (playlists, segments). Goal: console <= 400 KB with hls.js.
2. Time to interactive: from navigation to the projects list rendered (the page has fetched its
   session and projects and answers input), cold cache and warm cache; and to the review view with a
   playable video. Medians of `--rounds`. Goal: <= 1 s on loopback.
3. Comment fan-out: 20 asset event streams, 10 on each replica; comments are posted alternately to
   either replica; for each comment and stream, the time from the POST leaving to the event arriving.
   Same-replica and cross-replica deliveries are reported apart, as a ratio. Goal: p95 <= 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from playwright.async_api import async_playwright

from fluxstudio.studio import sessions
from tests.bench.bench_upload import drop, prepare
from tests.fixtures.media import make_clip_in
from tests.fixtures.platform import WORKER_COMMAND, sse_events, start_api_server
from tests.test_console_browser import ARGS, CHROMIUM, VIEWPORT

STREAMS = 20
GOAL_BYTES = 400 * 1000
GOAL_TTI_S = 1.0
GOAL_P95_S = 0.250


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def ready_asset(url: str, token: str, clip: Path) -> str:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        project = (await c.post("/api/v1/projects", json={"name": "bench"})).json()["id"]
        created = await c.post(f"/api/v1/projects/{project}/assets?filename=bench.mp4&transcode=true",
                               content=clip.read_bytes())  # fmt: skip
        asset = created.json()["asset"]["id"]
        for _ in range(600):
            if (await c.get(f"/api/v1/assets/{asset}")).json()["status"] == "ready":
                return asset
            await asyncio.sleep(0.2)
    raise SystemExit("the bench asset never became ready")


async def browser_figures(url: str, database_url: str, asset: str, rounds: int) -> dict[str, object]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    console_bytes: dict[str, int] = {}
    raw_bytes = 0
    media_bytes = 0
    cold: list[float] = []
    warm: list[float] = []
    review: list[float] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for round_ in range(rounds):
            context = await browser.new_context(base_url=url, viewport=VIEWPORT)
            page = await context.new_page()
            seen: list = []

            def record(request, into=seen) -> None:
                into.append(request)

            page.on("requestfinished", record)
            code = await sessions.create_signin_code(pool, email="bench@example.com")
            started = time.perf_counter()
            await page.goto(f"/signin?code={code}")
            await page.get_by_role("heading", name="Projects").wait_for()
            await page.get_by_role("link", name="bench").wait_for()
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            await page.goto(f"/assets/{asset}")
            await page.wait_for_function("() => (document.querySelector('video') || {}).readyState >= 2")
            review.append(time.perf_counter() - started)
            started = time.perf_counter()
            await page.goto("/")
            await page.get_by_role("link", name="bench").wait_for()
            warm.append(time.perf_counter() - started)
            if round_ == 0:
                for request in seen:
                    path = request.url.split(url, 1)[-1]
                    sizes = await request.sizes()
                    if path.startswith("/media/"):
                        media_bytes += sizes["responseBodySize"] + sizes["responseHeadersSize"]
                    elif not path.startswith(("/api/", "/collab")):
                        key = path.split("?")[0]
                        if key not in console_bytes:
                            console_bytes[key] = sizes["responseBodySize"] + sizes["responseHeadersSize"]
                            async with httpx.AsyncClient(headers={"Accept-Encoding": "identity"}) as plain:
                                raw_bytes += len((await plain.get(request.url)).content)
            await context.close()
        await browser.close()
    await pool.close()
    hls = sum(size for name, size in console_bytes.items() if "hls.js@" in name)
    return {"console": sum(console_bytes.values()), "raw": raw_bytes, "hls": hls, "files": len(console_bytes),
            "media": media_bytes, "cold": cold, "warm": warm, "review": review}  # fmt: skip


async def fan_out(urls: tuple[str, str], token: str, asset: str, comments: int) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {token}"}
    clients = [httpx.AsyncClient(base_url=urls[i % 2], headers=headers, timeout=60) for i in range(STREAMS)]
    posters = [httpx.AsyncClient(base_url=u, headers=headers, timeout=60) for u in urls]
    sent: dict[str, tuple[float, int]] = {}
    lags: dict[str, list[float]] = {"same": [], "cross": []}
    arrived = asyncio.Event()
    counts: dict[str, int] = {}
    texts = [f"bench comment {n}" for n in range(comments)]

    async def read(index: int, stream) -> None:
        async for name, data in stream:
            if name != "comment":
                continue
            now = time.perf_counter()
            text = data["comment"]["text"]
            at, replica = sent[text]
            lags["same" if replica == index % 2 else "cross"].append(now - at)
            counts[text] = counts.get(text, 0) + 1
            if counts[text] == STREAMS:
                arrived.set()

    async with contextlib_stack(clients, asset) as streams:
        readers = [asyncio.create_task(read(i, s)) for i, s in enumerate(streams)]
        for n, text in enumerate(texts):
            replica = n % 2
            arrived.clear()
            sent[text] = (time.perf_counter(), replica)
            body = {"time_s": 0.5, "text": text}
            answer = await posters[replica].post(f"/api/v1/assets/{asset}/comments", json=body)
            assert answer.status_code == 201, answer.text
            await asyncio.wait_for(arrived.wait(), 10)
        for reader in readers:
            reader.cancel()
    for client in [*clients, *posters]:
        await client.aclose()
    return lags


class contextlib_stack:
    """Open the 20 streams, each past its first `asset` event, and close them all at the end."""

    def __init__(self, clients: list[httpx.AsyncClient], asset: str) -> None:
        self._managers = [sse_events(c, f"/api/v1/assets/{asset}/events") for c in clients]

    async def __aenter__(self) -> list:
        streams = [await m.__aenter__() for m in self._managers]
        for stream in streams:
            assert (await anext(stream))[0] == "asset"
        return streams

    async def __aexit__(self, *exc: object) -> None:
        for manager in self._managers:
            await manager.__aexit__(None, None, None)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--comments", type=int, default=40)
    parser.add_argument("--database-url", default=os.environ.get(
        "FLUXSTUDIO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))  # fmt: skip
    parser.add_argument("--redis-url", default=os.environ.get("FLUXSTUDIO_TEST_REDIS_URL"))
    args = parser.parse_args()
    if not args.redis_url:
        raise SystemExit("--redis-url (or FLUXSTUDIO_TEST_REDIS_URL) is required: a Redis of your own")
    if CHROMIUM is None:
        raise SystemExit("chromium is not installed")
    work = Path(tempfile.mkdtemp(prefix="fluxstudio-bench-console-"))
    database_url, token = await prepare(args.database_url)
    env = {"DATABASE_URL": database_url, "REDIS_URL": args.redis_url, "FLUXSTUDIO_HOME": str(work / "home"),
           "STORAGE_URL": (work / "media").as_uri(), "LOG_FORMAT": "json",
           "LOG_LEVEL": "warning"}  # fmt: skip
    servers = [start_api_server(env, work / f"api-{i}.log") for i in range(2)]
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [*WORKER_COMMAND], env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        clip = make_clip_in(work, "bench", size="1280x720", duration=6.0)
        asset = await ready_asset(servers[0].url, token, clip)
        figures = await browser_figures(servers[0].url, database_url, asset, args.rounds)
        lags = await fan_out((servers[0].url, servers[1].url), token, asset, args.comments)
    finally:
        worker.terminate()
        worker.wait(30)
        for server in servers:
            server.stop()
        await drop(args.database_url, database_url)
        shutil.rmtree(work, ignore_errors=True)

    kb = 1000
    print(f"machine: {os.cpu_count()} cores shared with other work; figures are upper bounds\n")
    print("1. first load (sign-in link -> projects -> review view with a ready 720p asset)")
    print(
        f"   console, compressed as sent: {figures['console'] / kb:7.1f} KB in {figures['files']} files "
        f"(goal {GOAL_BYTES / kb:.0f} KB: {figures['console'] / GOAL_BYTES:.2f}x of it)"
    )
    print(f"   of which hls.js:             {figures['hls'] / kb:7.1f} KB")
    print(
        f"   console, uncompressed:       {figures['raw'] / kb:7.1f} KB "
        f"(gzip sends {figures['console'] / max(1, figures['raw']):.2f}x of it)"
    )
    print(f"   media (playlists, segments): {figures['media'] / kb:7.1f} KB, not counted above\n")
    cold, warm, review = (statistics.median(figures[k]) for k in ("cold", "warm", "review"))  # type: ignore[arg-type]
    print(f"2. time to interactive, median of {args.rounds} (goal {GOAL_TTI_S:.1f} s)")
    print(f"   projects, cold cache:  {cold * 1000:6.0f} ms  ({cold / GOAL_TTI_S:.2f}x the goal)")
    print(f"   projects, warm cache:  {warm * 1000:6.0f} ms  ({warm / cold:.2f}x cold)")
    print(f"   review view, playable: {review * 1000:6.0f} ms  ({review / GOAL_TTI_S:.2f}x the goal)\n")
    every = lags["same"] + lags["cross"]
    print(
        f"3. comment fan-out: {args.comments} comments x {STREAMS} streams on 2 replicas "
        f"({len(every)} deliveries; goal p95 {GOAL_P95_S * 1000:.0f} ms)"
    )
    for name, values in (("all", every), ("same replica", lags["same"]), ("cross replica", lags["cross"])):
        print(
            f"   {name:14} p50 {pct(values, 0.5) * 1000:6.1f} ms  p95 {pct(values, 0.95) * 1000:6.1f} ms  "
            f"max {max(values) * 1000:6.1f} ms"
        )
    print(
        f"   cross/same p95 ratio: {pct(lags['cross'], 0.95) / max(1e-9, pct(lags['same'], 0.95)):.2f}x; "
        f"p95 is {pct(every, 0.95) / GOAL_P95_S:.2f}x the goal"
    )


if __name__ == "__main__":
    asyncio.run(main())
