"""Delayed jobs and the scheduler shared with node-resque 9.7.1: each side's delayed jobs are read,
removed and moved by the other, and payq's and node-resque's schedulers elect one leader between them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import redis

from service.redis_server import RedisServer
from tests.interop.conftest import HERE, NAMESPACE, NodeResque, RunWorker
from tests.interop.test_node_resque import TRICKY_ARGS, Recorder
from tests.waiting import wait_until
from workers.codec import JSONValue, encode_job
from workers.connection import Store
from workers.delayed import del_delayed, enqueue_at, list_delayed, scheduled_at
from workers.jobs import Registry
from workers.retry import RetryPolicy
from workers.scheduler import Scheduler

LOCK = "resque:resque_scheduler_leader_lock"


@dataclass
class NodeScheduler:
    """A running ``scheduler_run.js``, with the events it printed so far."""

    proc: asyncio.subprocess.Process
    events: list[dict[str, Any]] = field(default_factory=list)

    def saw(self, event: str) -> bool:
        return any(e["event"] == event for e in self.events)

    @property
    def transferred(self) -> list[dict[str, Any]]:
        return [e["job"] for e in self.events if e["event"] == "transferredJob"]


@pytest.fixture
def node_scheduler(node_binary: str, redis_server: RedisServer, redis_url: str) -> Callable[..., Any]:
    """Start a node-resque Scheduler; it ends (releasing its lock) when the block ends."""

    @asynccontextmanager
    async def running(name: str = "nodehost:77", timeout_ms: int = 100) -> AsyncIterator[NodeScheduler]:
        proc = await asyncio.create_subprocess_exec(
            node_binary,
            str(HERE / "scheduler_run.js"),
            str(redis_server.port),
            NAMESPACE,
            name,
            str(timeout_ms),
            cwd=HERE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        scheduler = NodeScheduler(proc)

        async def read() -> None:
            assert proc.stdout is not None
            async for line in proc.stdout:
                scheduler.events.append(orjson.loads(line))

        reader = asyncio.create_task(read())
        try:
            await wait_until(lambda: scheduler.saw("started"), what="node scheduler started")
            yield scheduler
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                await reader
        assert scheduler.saw("ended")

    return running


def delayed_keys(sync_redis: redis.Redis) -> list[bytes]:
    return [k for pattern in ("resque:delayed*", "resque:timestamps:*") for k in sync_redis.scan_iter(match=pattern)]


async def test_node_reads_and_removes_payq_delayed_jobs(
    node_resque: NodeResque, store: Store, sync_redis: redis.Redis
) -> None:
    at = time.time() + 3600
    ts = await enqueue_at(store, at, "q", "echo", TRICKY_ARGS[1])
    await enqueue_at(store, at, "q", "echo", TRICKY_ARGS[2])

    assert await node_resque.queue("scheduledAt", "q", "echo", TRICKY_ARGS[1]) == [ts]
    assert await node_resque.queue("allDelayed") == {
        str(ts * 1000): [{"class": "echo", "queue": "q", "args": args} for args in TRICKY_ARGS[1:3]]
    }
    assert await node_resque.queue("delDelayed", "q", "echo", TRICKY_ARGS[1]) == [ts]

    assert await scheduled_at(store, "q", "echo", TRICKY_ARGS[1]) == []
    assert [item.raw for item in await list_delayed(store)] == [encode_job("q", "echo", TRICKY_ARGS[2])]


async def test_payq_reads_and_removes_node_delayed_jobs(
    node_resque: NodeResque, store: Store, sync_redis: redis.Redis
) -> None:
    at_ms = int((time.time() + 3600) * 1000)
    for args in TRICKY_ARGS:
        await node_resque.queue("enqueueAt", at_ms, "q", "echo", args)
    ts = round(at_ms / 1000)

    items = await list_delayed(store)
    assert [item.raw for item in items] == [encode_job("q", "echo", args) for args in TRICKY_ARGS]
    assert await scheduled_at(store, "q", "echo", TRICKY_ARGS[0]) == [ts]
    for args in TRICKY_ARGS:
        assert await del_delayed(store, "q", "echo", args) == [ts]

    assert await node_resque.queue("scheduledAt", "q", "echo", TRICKY_ARGS[0]) == []
    assert await node_resque.queue("allDelayed") == {}
    assert delayed_keys(sync_redis) == []


async def test_node_scheduler_moves_payq_delayed_jobs_to_node_worker(
    node_resque: NodeResque, node_scheduler: Callable[..., Any], store: Store, sync_redis: redis.Redis
) -> None:
    for args in TRICKY_ARGS:
        await enqueue_at(store, time.time() - 1, "q", "echo", args)

    async with node_scheduler() as scheduler:
        result = await node_resque.work("q", len(TRICKY_ARGS))

    assert [job["args"] for job in result["jobs"]] == TRICKY_ARGS
    assert [job["args"] for job in scheduler.transferred] == TRICKY_ARGS
    assert delayed_keys(sync_redis) == []


async def test_payq_scheduler_moves_node_delayed_jobs_to_payq_worker(
    node_resque: NodeResque, run_worker: RunWorker, sync_redis: redis.Redis
) -> None:
    for args in TRICKY_ARGS:
        await node_resque.queue("enqueueAt", int(time.time() * 1000) - 1000, "q", "echo", args)
    recorder = Recorder()

    async with run_worker(recorder.registry("echo"), scheduler_interval_s=0.1):
        await wait_until(lambda: len(recorder.calls) == len(TRICKY_ARGS), what="delayed node jobs performed")

    assert recorder.calls == [("echo", args) for args in TRICKY_ARGS]
    assert delayed_keys(sync_redis) == []
    assert sync_redis.get(LOCK) is None


async def test_one_leader_between_payq_and_node_schedulers(
    node_resque: NodeResque, node_scheduler: Callable[..., Any], store: Store, sync_redis: redis.Redis
) -> None:
    first, second = Scheduler(store, "payqhost:1", interval_s=0.1), Scheduler(store, "payqhost:2", interval_s=0.1)
    holders: list[bytes | None] = []
    sampling = True

    async def sample() -> None:
        while sampling:
            assert not (first.leader and second.leader)
            holder = sync_redis.get(LOCK)
            if not holders or holders[-1] != holder:
                holders.append(holder)
            await asyncio.sleep(0.01)

    async def delay_batch(start: int) -> None:
        for n in range(start, start + 4):
            await enqueue_at(store, time.time() - 1, "q", "echo", [n])
        for n in range(start + 4, start + 6):
            await node_resque.queue("enqueueAt", int(time.time() * 1000) - 1000, "q", "echo", [n])

    sampler = asyncio.create_task(sample())
    first_task = asyncio.create_task(first.run())
    await wait_until(lambda: first.leader, what="payq scheduler leads")
    async with node_scheduler() as node:
        await delay_batch(0)
        await wait_until(lambda: sync_redis.llen("resque:queue:q") == 6, what="batch moved by payq")
        assert node.transferred == [] and not node.saw("leader")

        first.stop()
        await first_task
        await wait_until(lambda: node.saw("leader"), what="node scheduler takes over")
        second_task = asyncio.create_task(second.run())
        await delay_batch(6)
        await wait_until(lambda: sync_redis.llen("resque:queue:q") == 12, what="batch moved by node")
        # node reports each move on its stdout after making it: wait for the last report to be read
        await wait_until(lambda: len(node.transferred) == 6, what="node reports the six moves")
        assert sorted(job["args"][0] for job in node.transferred) == list(range(6, 12))
        assert not second.leader
    await wait_until(lambda: second.leader, what="payq scheduler takes over from node")
    await delay_batch(12)
    await wait_until(lambda: sync_redis.llen("resque:queue:q") == 18, what="batch moved by payq again")
    second.stop()
    await second_task
    sampling = False
    await sampler

    assert [h for h in holders if h is not None] == [b"payqhost:1", b"nodehost:77", b"payqhost:2"]
    assert len(node.transferred) == 6
    moved = [orjson.loads(raw)["args"][0] for raw in sync_redis.lrange("resque:queue:q", 0, -1)]
    assert sorted(moved) == list(range(18))
    assert delayed_keys(sync_redis) == []


async def test_payq_retry_keeps_attempt_count_through_node_scheduler(
    node_scheduler: Callable[..., Any], run_worker: RunWorker, store: Store, sync_redis: redis.Redis
) -> None:
    calls: list[list[JSONValue]] = []

    def flaky(*args: JSONValue) -> None:
        calls.append(list(args))
        raise ConnectionError(f"downstream down (call {len(calls)})")

    registry = Registry()
    registry.register(flaky, "flaky", retry=RetryPolicy(attempts=3, backoff_s=0.01, jitter=0))
    async with node_scheduler() as node, run_worker(registry, scheduler=False):
        await enqueue_at(store, time.time() - 1, "q", "flaky", TRICKY_ARGS[1])
        await wait_until(lambda: sync_redis.llen("resque:failed") == 1, what="job failed for good")

    assert calls == [TRICKY_ARGS[1]] * 3
    assert [job["args"] for job in node.transferred] == [TRICKY_ARGS[1]] * 3  # the job, then two retries
    entry = orjson.loads(sync_redis.lindex("resque:failed", 0) or b"")
    assert entry["attempts"] == 3
    assert [h["error"] for h in entry["history"]] == [f"downstream down (call {n})" for n in (1, 2, 3)]
