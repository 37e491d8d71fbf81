from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from redis.exceptions import RedisError

from service.app import create_app
from tests.deploy.topologies import SentinelGroup
from tests.service.intake_client import intake_settings, signed_headers, utxo_body
from workers.connection import SentinelUrl, open_store
from workers.jobs import Registry
from workers.queues import enqueue
from workers.runtime import Worker, WorkerOptions


@pytest.fixture
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    group = SentinelGroup(Path(tmp_path_factory.mktemp("sentinel")))
    group.start()
    yield group
    group.stop()


# A failover cancels connections redis-py is still opening, and it leaves their sockets for the garbage
# collector, which reports each as unclosed. The failover tests ignore those reports while they run and
# collect what is left before their loop closes, so that no later test inherits them.
ABANDONED_CONNECTIONS = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture
async def collect_abandoned_connections() -> AsyncIterator[None]:
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def test_close_store_closes_sentinel_connections(sentinel_group: SentinelGroup) -> None:
    store = await open_store(sentinel_group.url)
    await store.redis.ping()
    sentinels = store.redis.connection_pool.sentinel_manager.sentinels  # type: ignore[attr-defined]
    assert any(s.connection_pool._available_connections for s in sentinels)
    await store.close()
    assert not any(c.is_connected for s in sentinels for c in s.connection_pool._available_connections), (
        "a sentinel connection was left open"
    )


def test_parse_sentinel_url_reads_every_part() -> None:
    url = SentinelUrl.parse("redis+sentinel://:s%40cret@10.0.0.1:26379,[::1]:26380/mymaster/2")
    assert url.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert (url.master, url.db, url.password) == ("mymaster", 2, "s@cret")


@pytest.mark.parametrize(
    "url",
    ["redis+sentinel://host:1", "redis+sentinel://host/master", "redis+sentinel://h:1/m/x", "redis+sentinel:///m"],
)
def test_parse_sentinel_url_refuses_malformed(url: str) -> None:
    from workers.connection import RedisUrlError

    with pytest.raises(RedisUrlError):
        SentinelUrl.parse(url)


@pytest.mark.timeout(120)
@ABANDONED_CONNECTIONS
@pytest.mark.usefixtures("collect_abandoned_connections")
async def test_worker_follows_failover_and_loses_no_acknowledged_job(sentinel_group: SentinelGroup) -> None:
    store = await open_store(sentinel_group.url)
    performed: set[int] = set()
    registry = Registry()
    registry.register(lambda n: performed.add(n), "pay")
    options = WorkerOptions(
        queues=("q",), hostname="failover", pid=1, poll_interval_s=0.1, heartbeat_interval_s=0.2, worker_timeout_s=5
    )
    worker = Worker(store, registry, options)
    task = asyncio.create_task(worker.run())
    acknowledged: list[int] = []
    first_master = sentinel_group.master_port()
    try:
        await asyncio.wait_for(worker.started.wait(), 10)
        n = 0
        deadline = time.monotonic() + 60
        while len(acknowledged) < 60:
            assert time.monotonic() < deadline, f"only {len(acknowledged)} acknowledged"
            if len(acknowledged) == 30:  # the master dies once (the sentinels may still name it for a while)
                await asyncio.to_thread(sentinel_group.kill, first_master)
            try:
                await enqueue(store, "q", "pay", [n])
                # Acknowledge a job only once a replica holds it, as PAYQ_REDIS_WAIT_REPLICAS=1 does.
                if await store.redis.execute_command("WAIT", 1, 2000) < 1:
                    continue
            except (RedisError, OSError):
                await asyncio.sleep(0.1)
                continue
            acknowledged.append(n)
            n += 1
        assert sentinel_group.master_port() != first_master
        deadline = time.monotonic() + 30
        while not set(acknowledged) <= performed:
            assert time.monotonic() < deadline, f"missing {sorted(set(acknowledged) - performed)}"
            await asyncio.sleep(0.05)
        deadline = time.monotonic() + 10
        while not await store.redis.sismember(store.keys.workers, "failover:1:q"):
            assert time.monotonic() < deadline, "the worker did not re-register on the new master"
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await store.close()


@pytest.mark.timeout(120)
@ABANDONED_CONNECTIONS
@pytest.mark.usefixtures("collect_abandoned_connections")
async def test_intake_answers_503_briefly_and_loses_no_acknowledged_payment(sentinel_group: SentinelGroup) -> None:
    settings = intake_settings(sentinel_group.url, redis_wait_replicas=1, bitcoin_job_class="record")
    store = await open_store(sentinel_group.url)
    performed: set[str] = set()
    registry = Registry()
    registry.register(lambda payment: performed.add(payment["id"]), "record")
    options = WorkerOptions(
        queues=("bitcoin:incoming",), hostname="intake", pid=2, poll_interval_s=0.1, worker_timeout_s=5
    )
    worker = Worker(store, registry, options)
    task = asyncio.create_task(worker.run())
    transport = httpx.ASGITransport(create_app(settings, store))
    acknowledged: list[str] = []
    refused_while_down = 0
    first_master = sentinel_group.master_port()
    try:
        await asyncio.wait_for(worker.started.wait(), 10)
        async with httpx.AsyncClient(transport=transport, base_url="http://payq.test") as client:
            n = 0
            down_since: float | None = None
            deadline = time.monotonic() + 60
            while len(acknowledged) < 60:
                assert time.monotonic() < deadline, f"only {len(acknowledged)} payments acknowledged"
                if len(acknowledged) == 30:  # the master dies once, as above
                    await asyncio.to_thread(sentinel_group.kill, first_master)
                body = orjson.dumps(utxo_body(txid=f"{n:064x}"))
                response = await client.post("/payments/bitcoin", content=body, headers=signed_headers(body))
                if response.status_code == 503:
                    refused_while_down += 1
                    down_since = down_since or time.monotonic()
                    await asyncio.sleep(0.05)
                    continue  # a sender retries the same payment
                assert response.status_code == 202, response.text
                [outcome] = response.json()["payments"]
                assert outcome["status"] in {"enqueued", "duplicate"}
                if down_since is not None:
                    print(f"intake answered 503 for {time.monotonic() - down_since:.1f}s during the failover")
                    down_since = None
                acknowledged.append(outcome["id"])
                n += 1
        assert sentinel_group.master_port() != first_master
        assert refused_while_down > 0, "the failover was never noticed"
        deadline = time.monotonic() + 30
        while not set(acknowledged) <= performed:
            assert time.monotonic() < deadline, f"acknowledged but never performed: {set(acknowledged) - performed}"
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await store.close()
