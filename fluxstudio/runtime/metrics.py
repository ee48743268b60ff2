"""Prometheus metrics of one API process, in a registry of its own (so two apps in one process, as in the
tests, never collide in the global registry).

Two kinds: what this process sees (HTTP requests and latency by route template, upload bytes, collab
connections) counted as it happens; and what the fleet's state is (jobs by status, queue depth, the
oldest queued job's age, job durations) read from PostgreSQL at scrape time, because PostgreSQL owns
job state and any replica can answer a scrape. If PostgreSQL is down the job families are left out and
`fluxstudio_database_up` says 0: an absent series is honest, a stale one is not. Worker counts come from
the workers' heartbeat keys in Redis (see `fluxstudio.heartbeat`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from fluxstudio.heartbeat import Beat

#: Job statuses always reported, so a dashboard sees 0 rather than no series.
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
#: Transcodes take seconds to hours.
JOB_DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SCRAPE_QUERY_TIMEOUT_S = 2.0
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

__all__ = ["CONTENT_TYPE_LATEST", "ApiMetrics", "JobStats", "read_job_stats"]


@dataclass
class JobStats:
    by_status: dict[str, int]
    queue_depth: int
    oldest_queued_age_s: float
    #: status -> (cumulative bucket counts aligned with JOB_DURATION_BUCKETS, count, sum)
    durations: dict[str, tuple[list[int], int, float]] = field(default_factory=dict)


class _FleetCollector:
    """Yields the families of the latest `JobStats`; the /metrics handler refreshes it before each scrape."""

    def __init__(self) -> None:
        self.stats: JobStats | None = None

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        if stats is None:
            return
        jobs = GaugeMetricFamily("fluxstudio_jobs", "Jobs by status, from PostgreSQL", labels=["status"])
        for status in JOB_STATUSES:
            jobs.add_metric([status], stats.by_status.get(status, 0))
        yield jobs
        yield GaugeMetricFamily(
            "fluxstudio_queue_depth", "Jobs waiting to be claimed (status queued)", value=stats.queue_depth
        )
        yield GaugeMetricFamily(
            "fluxstudio_queue_oldest_age_seconds",
            "Age of the oldest queued job; 0 when none waits",
            value=stats.oldest_queued_age_s,
        )
        durations = HistogramMetricFamily(
            "fluxstudio_job_duration_seconds",
            "Run time of finished jobs (started to finished), by final status",
            labels=["status"],
        )
        for status, (cumulative, count, total) in sorted(stats.durations.items()):
            buckets = [(floatToGoString(b), n) for b, n in zip(JOB_DURATION_BUCKETS, cumulative, strict=True)]
            durations.add_metric([status], [*buckets, ("+Inf", count)], total)
        yield durations


class ApiMetrics:
    """The metric objects of one app; `middleware.py` and the upload routes update them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "fluxstudio_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "fluxstudio_http_request_duration_seconds",
            "Time to answer an HTTP request (to the end of the body; SSE streams count their whole life)",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.upload_bytes = Counter(
            "fluxstudio_upload_bytes", "Bytes of uploaded media received into temporary files", registry=r
        )
        self.uploads = Counter("fluxstudio_uploads", "Uploads by outcome", ["outcome"], registry=r)
        # Set by the collaboration surface (fluxstudio/collab).
        self.collab_connections = Gauge(
            "fluxstudio_collab_connections", "Open collaboration WebSocket connections", registry=r
        )
        self.collab_rooms = Gauge(
            "fluxstudio_collab_rooms", "Collaboration rooms loaded in this process", registry=r
        )
        self.database_up = Gauge("fluxstudio_database_up", "1 if PostgreSQL answered this scrape", registry=r)
        self.redis_up = Gauge("fluxstudio_redis_up", "1 if Redis answered this scrape", registry=r)
        # From the workers' own heartbeat keys in Redis (left at their last value while Redis is down,
        # which `fluxstudio_redis_up` 0 flags): what the fleet says it runs, beside what PostgreSQL says.
        self.workers = Gauge(
            "fluxstudio_workers", "Live worker processes, from their heartbeats in Redis", registry=r
        )
        self.workers_jobs_running = Gauge(
            "fluxstudio_workers_jobs_running", "Jobs the live workers report running", registry=r
        )
        self.workers_capacity = Gauge(
            "fluxstudio_workers_capacity", "Jobs the live workers can run at once", registry=r
        )
        self._fleet = _FleetCollector()
        r.register(self._fleet)  # type: ignore[arg-type]

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else "OTHER"
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_latency.labels(method, route).observe(seconds)

    def observe_fleet(self, beats: Sequence[Beat]) -> None:
        self.workers.set(len(beats))
        self.workers_jobs_running.set(sum(b.jobs_running for b in beats))
        self.workers_capacity.set(sum(b.concurrency for b in beats))

    def render(self, stats: JobStats | None) -> bytes:
        self._fleet.stats = stats
        return generate_latest(self.registry)


async def read_job_stats(pool: asyncpg.Pool) -> JobStats:
    """The fleet's job state in three small queries (raises on a PostgreSQL failure or timeout)."""
    async with asyncio.timeout(SCRAPE_QUERY_TIMEOUT_S):
        rows = await pool.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        queued = await pool.fetchrow(
            "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age"
            " FROM jobs WHERE status = 'queued'"
        )
        # The bounds are our constants, never input, so formatting them into the statement is safe.
        filters = ", ".join(f"count(*) FILTER (WHERE d <= {b})" for b in JOB_DURATION_BUCKETS)
        duration_rows = await pool.fetch(
            f"SELECT status, count(*) AS n, coalesce(sum(d), 0) AS total, ARRAY[{filters}] AS cumulative"
            " FROM (SELECT status, extract(epoch FROM finished_at - started_at)::float8 AS d FROM jobs"
            "       WHERE finished_at IS NOT NULL AND started_at IS NOT NULL) finished"
            " GROUP BY status"
        )
    return JobStats(
        by_status={row["status"]: row["n"] for row in rows},
        queue_depth=queued["n"],
        oldest_queued_age_s=float(queued["age"]),
        durations={
            row["status"]: (list(row["cumulative"]), row["n"], float(row["total"])) for row in duration_rows
        },
    )
