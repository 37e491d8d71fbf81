"""/metrics on the app, and the worker's own metrics endpoint, scraped and parsed as Prometheus would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import redis
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.metrics import WorkerMetrics, start_worker_metrics_server
from service.redis_server import free_port
from service.settings import Settings
from workers.connection import Store
from workers.jobs import Registry
from workers.queues import enqueue
from workers.runtime import Worker, WorkerOptions

TXID = "a1075db55d416d3ca199f55b6084e2115b9345e16c5cf302fc80e9d5fbf5d48d"
BTC_ADDRESS = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
REPO = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def app_client(store: Store, **settings: object) -> httpx.AsyncClient:
    app = create_app(Settings(redis_url="redis://unused", **settings), store)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://payq")


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(store, webhook_tokens="tok-1") as client:
        yield client


def payment(output_index: int) -> bytes:
    body = {"txid": TXID, "output_index": output_index, "address": BTC_ADDRESS, "amount": "0.0015", "confirmations": 3}
    return orjson.dumps(body)


async def test_move_metrics_as_payments_arrive(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    assert value(before, "payq_webhook_requests_total", network="bitcoin", outcome="accepted") is None
    assert value(before, "payq_jobs_pending") == 0
    assert value(before, "payq_enqueue_latency_seconds_count") == 0

    for index in (0, 1, 1):  # the third one repeats the second payment
        response = await client.post("/payments/bitcoin", params={"token": "tok-1"}, content=payment(index))
        assert response.status_code == 202
    refused = await client.post("/payments/bitcoin", params={"token": "tok-1"}, content=b"{not json")
    assert refused.status_code == 422

    after = await scrape(client)
    assert value(after, "payq_webhook_requests_total", network="bitcoin", outcome="accepted") == 3
    assert value(after, "payq_webhook_requests_total", network="bitcoin", outcome="invalid") == 1
    assert value(after, "payq_queue_length", queue="bitcoin:incoming") == 2
    assert value(after, "payq_jobs_pending") == 2
    latencies = value(after, "payq_enqueue_latency_seconds_count")
    assert latencies is not None and latencies >= 2
    assert value(after, "payq_enqueue_latency_seconds_bucket", le="+Inf") == latencies


async def test_scrape_resque_numbers_from_redis(client: httpx.AsyncClient, sync_redis: redis.Redis) -> None:
    now = datetime.now(UTC)
    sync_redis.set("resque:stat:processed", 41)
    sync_redis.set("resque:stat:failed", 4)
    sync_redis.rpush("resque:failed", b'{"exception":"E"}', b'{"exception":"F"}')
    sync_redis.sadd("resque:workers", "fresh:1:q", "stale:2:q", "silent:3:q")
    sync_redis.hset("resque:workers:heartbeat", "fresh:1:q", now.isoformat())
    sync_redis.hset("resque:workers:heartbeat", "stale:2:q", (now - timedelta(minutes=10)).isoformat())
    sync_redis.set("resque:worker:fresh:1:q", b'{"queue":"q","run_at":"2026-12-03T15:41:00Z","payload":{"class":"A"}}')

    samples = await scrape(client)
    assert value(samples, "payq_redis_up") == 1
    assert value(samples, "payq_jobs_processed_total") == 41
    assert value(samples, "payq_jobs_failed_total") == 4
    assert value(samples, "payq_failed_jobs") == 2
    assert value(samples, "payq_workers_registered") == 3
    assert value(samples, "payq_workers_live") == 1
    assert value(samples, "payq_workers_busy") == 1


async def test_report_redis_down_in_metrics() -> None:
    store = Store.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        async with app_client(store) as client:
            samples = await scrape(client)
    finally:
        await store.close()
    assert value(samples, "payq_redis_up") == 0
    assert value(samples, "payq_queue_length", queue="bitcoin:incoming") is None


async def test_keep_each_app_registry_apart(store: Store) -> None:
    settings = Settings(redis_url="redis://unused")
    apps = [create_app(settings, store), create_app(settings, store)]
    apps[0].state.metrics.observe_webhook("dogecoin", "accepted")
    apps[0].state.metrics.observe_webhook("not-a-network", "unknown_network")
    scraped = []
    for app in apps:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://payq") as client:
            scraped.append(await scrape(client))
    one, two = scraped
    assert value(one, "payq_webhook_requests_total", network="dogecoin", outcome="accepted") == 1
    assert value(one, "payq_webhook_requests_total", network="other", outcome="unknown_network") == 1
    assert value(two, "payq_webhook_requests_total", network="dogecoin", outcome="accepted") is None
    assert (
        REGISTRY.get_sample_value("payq_webhook_requests_total", {"network": "dogecoin", "outcome": "accepted"}) is None
    )


async def test_serve_worker_job_counters_and_durations(store: Store) -> None:
    def boom() -> None:
        raise ValueError("boom")

    registry = Registry()
    registry.register(lambda *args: None, "ok")
    registry.register(boom, "boom")
    metrics = WorkerMetrics()
    seen = asyncio.Event()
    done: list[str] = []

    def listen(class_name: str, queue: str, duration_s: float, ok: bool) -> None:
        metrics.on_job(class_name, queue, duration_s, ok)
        done.append(class_name)
        if len(done) == 3:
            seen.set()

    options = WorkerOptions(queues=("q",), hostname="metrics-host", pid=99, poll_interval_s=0.2)
    worker = Worker(store, registry, options, on_job=listen)
    server = start_worker_metrics_server(metrics, 0, host="127.0.0.1")
    task = asyncio.create_task(worker.run())
    try:
        await enqueue(store, "q", "ok", [1])
        await enqueue(store, "q", "ok", [2])
        await enqueue(store, "q", "boom", [])
        await asyncio.wait_for(seen.wait(), 10)
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)
        server.stop()
    samples = parse(response.text)
    assert value(samples, "payq_worker_jobs_total", queue="q", job_class="ok", outcome="ok") == 2
    assert value(samples, "payq_worker_jobs_total", queue="q", job_class="boom", outcome="failed") == 1
    assert value(samples, "payq_worker_job_duration_seconds_count", queue="q", job_class="ok") == 2


def scrape_port(port: int) -> Samples | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except httpx.TransportError:
        return None
    return parse(response.text)


def wait_for_scrape(port: int, done: Callable[[Samples], bool], deadline_s: float = 20) -> Samples:
    """Scrape until ``done`` holds for the samples, or fail at the deadline."""
    until = time.monotonic() + deadline_s
    samples = None
    while time.monotonic() < until:
        samples = scrape_port(port)
        if samples is not None and done(samples):
            return samples
        time.sleep(0.05)
    raise AssertionError(f"the worker metrics never got there: {samples}")


def test_serve_metrics_from_payq_worker_command(redis_url: str, sync_redis: redis.Redis) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYQ_")}
    env.update(PAYQ_REDIS_URL=redis_url, PAYQ_POLL_INTERVAL_S="0.2")
    command = [sys.executable, "-m", "service.cli", "worker", "--queues", "q", "--metrics-port", str(port)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    log_ok = {"queue": "q", "job_class": "log", "outcome": "ok"}
    try:
        first = wait_for_scrape(port, lambda samples: True)
        sync_redis.sadd("resque:queues", "q")
        sync_redis.rpush("resque:queue:q", b'{"class":"log","queue":"q","args":[1]}')
        wait_for_scrape(port, lambda samples: value(samples, "payq_worker_jobs_total", **log_ok) == 1)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert value(first, "payq_worker_jobs_total", **log_ok) is None
    assert process.returncode == 0, stderr
    assert "worker metrics listening" in stderr
