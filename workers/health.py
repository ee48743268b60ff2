"""`--health-port`: the worker's liveness answer and its own metrics over HTTP, for platforms whose
probes cannot run a command (DigitalOcean App Platform workers, some PaaS) and for Prometheus.

    GET /healthz  -> 200 / 503, the same answer as `fluxstudio worker --check` (the local heartbeat file)
    GET /metrics  -> Prometheus text: jobs running here, arq's counters, heartbeat age

The answer comes from the heartbeat file, not from this server being up: the server runs on the same
event loop as the heartbeat, but a heartbeat that failed to write (full disk) must still fail the probe.
A tiny HTTP/1.0 server on asyncio streams: a second web framework in the worker is not worth two routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from fluxstudio.heartbeat import check_local, read_local
from fluxstudio.log import get_logger

READ_TIMEOUT_S = 5.0

log = get_logger()


class _WorkerCollector:
    def __init__(self, home: Path, worker: Any, jobs_running: Callable[[], int]) -> None:
        self.home = home
        self.worker = worker
        self.jobs_running = jobs_running

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "fluxstudio_worker_jobs_running", "Jobs this worker process runs now", value=self.jobs_running()
        )
        arq = CounterMetricFamily(
            "fluxstudio_worker_arq_jobs", "arq job runs in this process by outcome", labels=["outcome"]
        )
        for outcome, attribute in (("complete", "jobs_complete"), ("failed", "jobs_failed"),
                                   ("retried", "jobs_retried")):
            arq.add_metric([outcome], getattr(self.worker, attribute, 0))
        yield arq
        beats = read_local(self.home)
        age = beats[0].age_s() if beats else float("inf")
        yield GaugeMetricFamily(
            "fluxstudio_worker_heartbeat_age_seconds", "Seconds since this machine's freshest beat", value=age
        )


class HealthServer:
    def __init__(self, home: Path, worker: Any, jobs_running: Callable[[], int]) -> None:
        self.home = home
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_WorkerCollector(home, worker, jobs_running))  # type: ignore[arg-type]
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int, host: str = "0.0.0.0") -> int:
        self._server = await asyncio.start_server(self._handle, host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("worker_health_listening", port=self.port)
        return self.port

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def answer(self, path: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            alive, line = check_local(self.home)
            return (200 if alive else 503), "text/plain; charset=utf-8", (line + "\n").encode()
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        return 404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: nothing here needs them
            parts = request.decode("latin-1").split()
            method, path = (parts[0], parts[1].split("?", 1)[0]) if len(parts) >= 2 else ("", "")
            if method not in ("GET", "HEAD"):
                status, kind, body = 405, "text/plain; charset=utf-8", b"only GET\n"
            else:
                status, kind, body = self.answer(path)
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
            date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
            head = (
                f"HTTP/1.0 {status} {reason[status]}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nDate: {date}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, OSError, UnicodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
