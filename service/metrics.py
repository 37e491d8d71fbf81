"""Prometheus metrics: what the intake counts, what Redis holds at scrape time, what a worker did.

Every app and every worker gets its own ``CollectorRegistry`` (never the process-wide default),
so two apps in one process, as in the tests, never share numbers.

The intake reports through ``Metrics.observe_webhook(network, outcome)`` and
``Metrics.observe_enqueue_latency(seconds)``; the app keeps its ``Metrics`` in
``app.state.metrics`` and ``get_metrics(request)`` hands it to a route. Queue lengths, the failed
list, Resque's processed/failed counters and the workers are read from Redis when ``/metrics`` is
scraped, so they are right whichever Resque client changed them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from service.settings import NETWORKS
from workers.connection import Store
from workers.status import list_workers, read_stats

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
JOB_BUCKETS_S = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True, slots=True)
class RedisSnapshot:
    """What Redis held at the latest scrape."""

    up: bool
    queues: dict[str, int] = field(default_factory=dict)
    failed_list: int = 0
    processed: int = 0
    failed: int = 0
    workers: int = 0
    live_workers: int = 0
    working: int = 0


async def read_snapshot(store: Store, worker_timeout_s: float) -> RedisSnapshot:
    """Read the numbers once; a worker is live when its latest heartbeat is within ``worker_timeout_s``."""
    try:
        stats = await read_stats(store)
        workers = await list_workers(store)
    except (RedisError, OSError) as exc:
        logger.warning("metrics scrape could not read redis error=%s", exc)
        return RedisSnapshot(up=False)
    now = datetime.now(UTC)
    live = sum(1 for w in workers if w.heartbeat and (now - w.heartbeat).total_seconds() <= worker_timeout_s)
    return RedisSnapshot(
        up=True,
        queues=stats.queues,
        failed_list=stats.failed_list,
        processed=stats.processed,
        failed=stats.failed,
        workers=stats.workers,
        live_workers=live,
        working=stats.working,
    )


class _RedisCollector(Collector):
    """Turns the latest snapshot into metric families at scrape time."""

    def __init__(self) -> None:
        self.snapshot = RedisSnapshot(up=False)

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        snap = self.snapshot
        yield GaugeMetricFamily("payq_redis_up", "1 when Redis answered the latest scrape, else 0", value=int(snap.up))
        if not snap.up:
            return
        lengths = GaugeMetricFamily("payq_queue_length", "Jobs waiting in each Resque queue", labels=["queue"])
        for name, length in sorted(snap.queues.items()):
            lengths.add_metric([name], length)
        yield lengths
        yield GaugeMetricFamily("payq_jobs_pending", "Jobs waiting across all queues", value=sum(snap.queues.values()))
        yield GaugeMetricFamily("payq_failed_jobs", "Entries in the Resque failed list", value=snap.failed_list)
        yield CounterMetricFamily(
            "payq_jobs_processed", "Jobs performed successfully (Resque stat:processed)", value=snap.processed
        )
        yield CounterMetricFamily("payq_jobs_failed", "Jobs that failed (Resque stat:failed)", value=snap.failed)
        yield GaugeMetricFamily("payq_workers_registered", "Workers in the Resque workers set", value=snap.workers)
        yield GaugeMetricFamily(
            "payq_workers_live", "Registered workers with a recent heartbeat", value=snap.live_workers
        )
        yield GaugeMetricFamily("payq_workers_busy", "Workers performing a job right now", value=snap.working)


class Metrics:
    """The HTTP service's metrics, in a registry of its own."""

    def __init__(self, worker_timeout_s: float = 30.0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.worker_timeout_s = worker_timeout_s
        self.webhook_requests = Counter(
            "payq_webhook_requests",
            "Webhook deliveries received, by network and outcome",
            ["network", "outcome"],
            registry=self.registry,
        )
        self.enqueue_latency = Histogram(
            "payq_enqueue_latency_seconds",
            "Time from a webhook's arrival to its job being stored in Redis",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._webhook_children: dict[tuple[str, str], Counter] = {}
        self._redis = _RedisCollector()
        self.registry.register(self._redis)
        self._lock = asyncio.Lock()

    def observe_webhook(self, network: str, outcome: str) -> None:
        """Count one webhook delivery; unknown networks are counted as ``other`` to bound the labels."""
        label = network if network in NETWORKS else "other"
        child = self._webhook_children.get((label, outcome))
        if child is None:
            child = self._webhook_children[label, outcome] = self.webhook_requests.labels(
                network=label, outcome=outcome
            )
        child.inc()

    def observe_enqueue_latency(self, seconds: float) -> None:
        """Record how long one payment took from arrival to being stored as a job."""
        self.enqueue_latency.observe(max(seconds, 0.0))

    async def render(self, store: Store) -> bytes:
        """The text exposition, with Redis read now."""
        async with self._lock:
            self._redis.snapshot = await read_snapshot(store, self.worker_timeout_s)
            return generate_latest(self.registry)


def get_metrics(request: Request) -> Metrics:
    """The app's metrics, as a FastAPI dependency."""
    metrics: Metrics = request.app.state.metrics
    return metrics


router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Metrics"}},
)
async def metrics_endpoint(request: Request) -> Response:
    store: Store = request.app.state.store
    body = await get_metrics(request).render(store)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


# the worker side ---------------------------------------------------------------------------------


class WorkerMetrics:
    """A worker process's own job counters and durations, fed by the Worker's ``on_job`` listener."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs = Counter(
            "payq_worker_jobs",
            "Jobs this worker process performed, by queue, class and outcome",
            ["queue", "job_class", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "payq_worker_job_duration_seconds",
            "How long jobs took in this worker process",
            ["queue", "job_class"],
            buckets=JOB_BUCKETS_S,
            registry=self.registry,
        )
        self._series: dict[tuple[str, str, bool], tuple[Counter, Histogram]] = {}

    def on_job(self, class_name: str, queue: str, duration_s: float, ok: bool) -> None:
        """The Worker's job listener: count the job and record its duration."""
        key = (queue, class_name, ok)
        series = self._series.get(key)
        if series is None:  # labels() is a locked lookup; a busy worker calls this for every job
            outcome = "ok" if ok else "failed"
            series = self._series[key] = (
                self.jobs.labels(queue=queue, job_class=class_name, outcome=outcome),
                self.duration.labels(queue=queue, job_class=class_name),
            )
        series[0].inc()
        series[1].observe(duration_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(slots=True)
class MetricsServer:
    """A running worker metrics endpoint; ``stop()`` shuts it down."""

    server: WSGIServer

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_worker_metrics_server(metrics: WorkerMetrics, port: int, host: str = "0.0.0.0") -> MetricsServer:
    """Serve ``metrics`` on ``http://host:port/metrics`` from a background thread (port 0 picks one)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    running = MetricsServer(server)
    logger.info("worker metrics listening host=%s port=%s", host, running.port)
    return running
