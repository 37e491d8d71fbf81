from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.deploy.topologies import Cluster
from workers.connection import RedisUrlError, Store, open_store
from workers.failures import failed_count, list_failed, retry_failed
from workers.jobs import Registry
from workers.queues import enqueue, enqueue_unique, queue_lengths
from workers.runtime import Worker, WorkerOptions
from workers.status import list_workers


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("cluster")))
    cluster.start()
    yield cluster
    cluster.stop()


async def test_open_store_refuses_cluster_without_hash_tag(cluster: Cluster) -> None:
    with pytest.raises(RedisUrlError, match=r"hash tag such as \{resque\}"):
        await open_store(cluster.url, "resque")


async def test_worker_runs_on_cluster_with_hash_tagged_namespace(cluster: Cluster) -> None:
    store = await open_store(cluster.url, "{payq-test}")
    seen: list[object] = []
    done = asyncio.Event()

    def pay(arg: object) -> None:
        seen.append(arg)
        if len(seen) == 3:
            done.set()

    def boom() -> None:
        raise RuntimeError("downstream down")

    registry = Registry()
    registry.register(pay, "pay")
    registry.register(boom, "boom")
    options = WorkerOptions(queues=("*",), hostname="clusterhost", pid=9, poll_interval_s=0.1)
    worker = Worker(store, registry, options)
    try:
        assert await enqueue_unique(store, "bitcoin:incoming", "pay", [1], "bitcoin:x:1", 60)
        assert not await enqueue_unique(store, "bitcoin:incoming", "pay", [1], "bitcoin:x:1", 60)
        await enqueue(store, "bitcoin:incoming", "pay", [2])
        await enqueue(store, "other", "boom", [])
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.started.wait(), 10)
        assert [w.id for w in await list_workers(store)] == ["clusterhost:9:*"]
        await wait_for_failed(store, 1)
        [failure] = await list_failed(store)
        assert failure.exception == "RuntimeError"
        registry.register(lambda: pay(3), "boom")
        await retry_failed(store, 0)
        await asyncio.wait_for(done.wait(), 10)
        worker.stop()
        await asyncio.wait_for(task, 10)
        assert sorted(orjson.dumps(s) for s in seen) == [b"1", b"2", b"3"]
        assert await queue_lengths(store) == {"bitcoin:incoming": 0, "other": 0}
        assert await list_workers(store) == []
    finally:
        await store.close()


async def wait_for_failed(store: Store, count: int) -> None:
    for _ in range(500):
        if await failed_count(store) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no failure recorded")
