"""Webhook delivery latency: from a state change committed by the API to the receiver holding the request.
Run by hand, not by pytest:

    FLUXSTUDIO_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m tests.bench.bench_webhooks [--events 50] [--redis-url redis://127.0.0.1:6379/0]

A real API process and one worker process on a fresh migrated database, a loopback receiver (allowed by
IMPORT_ALLOWED_NETWORKS) answering 204. Each round uploads a small clip, then deletes it: the DELETE's
transaction writes the `asset.deleted` outbox row and NOTIFYs the workers. Latency is measured from the
moment the DELETE's answer arrives (the change is committed by then) to the receiver's arrival time, and
also from the moment the DELETE was sent (an upper bound on "state change to receiver").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.bench.bench_upload import drop, prepare
from tests.fixtures.media import make_clip_in
from tests.fixtures.platform import REPO, WORKER_COMMAND, start_api_server
from tests.fixtures.receiver import Answer, Receiver


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def run(events: int, admin_url: str, redis_url: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="fluxstudio-bench-hooks-"))
    url, token = asyncio.run(prepare(admin_url))
    env = {
        "DATABASE_URL": url, "REDIS_URL": redis_url, "FLUXSTUDIO_HOME": str(work / "home"),
        "STORAGE_URL": (work / "media").as_uri(), "LOG_FORMAT": "json", "LOG_LEVEL": "warning",
        "IMPORT_ALLOWED_NETWORKS": "127.0.0.1/32",
    }  # fmt: skip
    receiver = Receiver()
    receiver.answers = [Answer(204)]
    server = start_api_server(env, work / "api.log")
    with (work / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            WORKER_COMMAND, env={**os.environ, **env, "PYTHONPATH": str(REPO)}, cwd=REPO, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        clip = make_clip_in(work, "clip", duration=1.0).read_bytes()
        from_answer, from_request = [], []
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            project = c.post("/api/v1/projects", json={"name": "bench"}).json()["id"]
            c.post(
                "/api/v1/webhooks", json={"url": receiver.url, "events": ["asset.deleted"]}
            ).raise_for_status()
            for round_ in range(events):
                asset = c.post(f"/api/v1/projects/{project}/assets?filename=c.mp4", content=clip).json()[
                    "asset"
                ]
                sent = time.time()
                c.delete(f"/api/v1/assets/{asset['id']}").raise_for_status()
                answered = time.time()
                [post] = asyncio.run(receiver.wait_for(round_ + 1, within_s=30))[round_:]
                from_answer.append(max(0.0, post.at - answered))
                from_request.append(post.at - sent)
        ms = [v * 1000 for v in from_answer]
        ms_req = [v * 1000 for v in from_request]
        print(f"{events} asset.deleted events, one worker, loopback receiver (machine shared with others)")
        print(
            f"commit->receiver: p50 {statistics.median(ms):.1f} ms, p90 {percentile(ms, 0.9):.1f} ms,"
            f" max {max(ms):.1f} ms"
        )
        p50 = statistics.median(ms)
        print(
            f"DELETE sent->receiver: p50 {statistics.median(ms_req):.1f} ms,"
            f" p90 {percentile(ms_req, 0.9):.1f} ms (the 5000 ms poll backstop alone would average"
            f" ~2500 ms: NOTIFY is {2500 / p50:.0f}x sooner)"
        )
    finally:
        worker.terminate()
        worker.wait(30)
        server.stop()
        receiver.close()
        asyncio.run(drop(admin_url, url))
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument(
        "--redis-url", default=os.environ.get("FLUXSTUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    admin = os.environ.get("FLUXSTUDIO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    run(args.events, admin, args.redis_url)


if __name__ == "__main__":
    sys.exit(main())
