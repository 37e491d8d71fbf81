from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import redis

from tests.waiting import wait_until
from tests.workers.test_runtime import Recorder, options, running
from workers.codec import JSONValue
from workers.connection import Store
from workers.delayed import delayed_count, enqueue_at
from workers.jobs import Registry
from workers.queues import enqueue
from workers.runtime import Worker
from workers.scheduler import Scheduler

LOCK = "resque:resque_scheduler_leader_lock"
ROOT = Path(__file__).resolve().parents[2]


def delayed_keys(sync_redis: redis.Redis) -> list[bytes]:
    return sorted(sync_redis.scan_iter(match="resque:delayed*")) + sorted(sync_redis.scan_iter("resque:timestamps:*"))


async def test_try_lead_takes_lock_as_node_does(store: Store, sync_redis: redis.Redis) -> None:
    scheduler = Scheduler(store, "host:1")

    assert await scheduler.try_lead() is True

    assert sync_redis.get(LOCK) == b"host:1"
    assert 170 < sync_redis.ttl(LOCK) <= 180
    assert scheduler.leader


async def test_try_lead_renews_own_lock_and_respects_other(store: Store, sync_redis: redis.Redis) -> None:
    ours, theirs = Scheduler(store, "host:1", lock_timeout_s=60), Scheduler(store, "host:2")
    await ours.try_lead()
    sync_redis.expire(LOCK, 5)

    assert await ours.try_lead() is True
    assert sync_redis.ttl(LOCK) > 50
    assert await theirs.try_lead() is False
    assert not theirs.leader
    assert sync_redis.get(LOCK) == b"host:1"


async def test_release_drops_only_own_lock(store: Store, sync_redis: redis.Redis) -> None:
    ours, theirs = Scheduler(store, "host:1"), Scheduler(store, "host:2")
    await ours.try_lead()

    assert await theirs.release() is False
    assert sync_redis.get(LOCK) == b"host:1"
    assert await ours.release() is True
    assert sync_redis.get(LOCK) is None
    assert not ours.leader


async def test_move_due_moves_only_due_jobs_byte_for_byte(store: Store, sync_redis: redis.Redis) -> None:
    now = 1_800_000_000.0
    ruby = b'{"class":"Archive","args":[1.0,"caf\\u00e9"],"queue":"low"}'
    sync_redis.rpush("resque:delayed:1799999990", ruby)
    sync_redis.sadd(b"resque:timestamps:" + ruby, "delayed:1799999990")
    sync_redis.zadd("resque:delayed_queue_schedule", {"1799999990": 1799999990})
    await enqueue_at(store, now, "q", "pay", [{"id": "bitcoin:aa:0"}])
    await enqueue_at(store, now + 1, "q", "pay", ["later"])
    scheduler = Scheduler(store, "host:1", clock=lambda: now)
    pubsub = store.redis.pubsub()
    await pubsub.subscribe("resque:payq:wake")
    assert (await pubsub.get_message(timeout=1.0) or {}).get("type") == "subscribe"

    assert await scheduler.poll() == 2

    assert sync_redis.lrange("resque:queue:low", 0, -1) == [ruby]
    assert sync_redis.lrange("resque:queue:q", 0, -1) == [b'{"class":"pay","queue":"q","args":[{"id":"bitcoin:aa:0"}]}']
    assert sync_redis.smembers("resque:queues") == {b"low", b"q"}
    assert sync_redis.zrange("resque:delayed_queue_schedule", 0, -1) == [str(int(now) + 1).encode()]
    assert not sync_redis.exists("resque:delayed:1799999990", f"resque:delayed:{int(now)}")
    assert not sync_redis.exists(b"resque:timestamps:" + ruby)
    assert await delayed_count(store) == 1
    woken = [await pubsub.get_message(timeout=1.0) for _ in range(2)]
    assert {m["data"] for m in woken if m} == {b"low", b"q"}
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_move_due_drains_timestamp_in_batches(store: Store, sync_redis: redis.Redis) -> None:
    for n in range(10):
        await enqueue_at(store, 100, "q", "pay", [n])
    scheduler = Scheduler(store, "host:1", batch_size=3)

    assert await scheduler.poll() == 10

    assert [orjson.loads(raw)["args"] for raw in sync_redis.lrange("resque:queue:q", 0, -1)] == [[n] for n in range(10)]
    assert delayed_keys(sync_redis) == []


async def test_move_due_fails_item_without_queue(store: Store, sync_redis: redis.Redis) -> None:
    sync_redis.rpush("resque:delayed:100", b'{"class":"Orphan","args":[1]}')
    sync_redis.zadd("resque:delayed_queue_schedule", {"100": 100})

    assert await Scheduler(store, "host:1").poll() == 0

    [raw] = sync_redis.lrange("resque:failed", 0, -1)
    entry = orjson.loads(raw)
    assert b"\\/" not in raw and "/" in entry["failed_at"]  # written as JSON.stringify writes it
    assert entry["payload"] == {"class": "Orphan", "args": [1]}
    assert entry["exception"] == "MalformedJob" and entry["worker"] == "host:1"
    assert delayed_keys(sync_redis) == []


async def test_follower_moves_nothing(store: Store, sync_redis: redis.Redis) -> None:
    sync_redis.set(LOCK, "node:99")
    await enqueue_at(store, 100, "q", "pay", [1])

    assert await Scheduler(store, "host:1").poll() == 0

    assert await delayed_count(store) == 1
    assert sync_redis.llen("resque:queue:q") == 0


async def test_running_schedulers_hand_over_lead_on_stop(store: Store, sync_redis: redis.Redis) -> None:
    first, second = Scheduler(store, "host:1", interval_s=0.05), Scheduler(store, "host:2", interval_s=0.05)
    tasks = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    try:
        await wait_until(lambda: first.leader or second.leader)
        leader, follower = (first, second) if first.leader else (second, first)
        await asyncio.sleep(0)
        assert not follower.leader
        assert sync_redis.get(LOCK) == leader.name.encode()

        leader.stop()
        await wait_until(lambda: follower.leader)

        assert sync_redis.get(LOCK) == follower.name.encode()
        assert not leader.leader
    finally:
        first.stop()
        second.stop()
        await asyncio.gather(*tasks)
    assert sync_redis.get(LOCK) is None


KILLED_SCHEDULER = """
import asyncio, sys
from workers.connection import Store
from workers.scheduler import Scheduler

async def main() -> None:
    store = Store.from_url(sys.argv[1])
    await Scheduler(store, "doomed", batch_size=1, lock_timeout_s=2).poll()

asyncio.run(main())
"""


async def test_scheduler_killed_mid_move_loses_and_doubles_nothing(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    total = 3000
    pipe = sync_redis.pipeline()
    for n in range(total):
        raw = orjson.dumps({"class": "pay", "queue": "q", "args": [n]})
        ts = 1000 + n % 30
        pipe.rpush(f"resque:delayed:{ts}", raw)
        pipe.sadd(b"resque:timestamps:" + raw, f"delayed:{ts}")
        pipe.zadd("resque:delayed_queue_schedule", {str(ts): ts})
    pipe.execute()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SCHEDULER, redis_url], cwd=ROOT)
    try:
        await wait_until(lambda: sync_redis.llen("resque:queue:q") >= 100, timeout_s=20)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    moved_before_kill = sync_redis.llen("resque:queue:q")
    left = await delayed_count(store)
    assert 0 < moved_before_kill < total
    assert moved_before_kill + left == total

    heir = Scheduler(store, "heir")
    assert await heir.try_lead() is False  # the dead leader's lock holds until it expires
    await wait_until(lambda: sync_redis.get(LOCK) is None, timeout_s=5)
    assert await heir.poll() == left

    moved = [orjson.loads(raw)["args"][0] for raw in sync_redis.lrange("resque:queue:q", 0, -1)]
    assert sorted(moved) == list(range(total))
    assert delayed_keys(sync_redis) == []


async def test_worker_runs_scheduler_and_hands_lock_back(store: Store, sync_redis: redis.Redis) -> None:
    rec = Recorder()
    registry = Registry()
    registry.register(lambda *a: rec.note("pay", a), "pay")
    worker = Worker(store, registry, options(scheduler_interval_s=0.05))
    await enqueue_at(store, time.time() - 5, "q", "pay", ["due"])
    async with running(worker):
        await rec.wait_for(1)
        assert sync_redis.get(LOCK) == b"testhost:4242"

    assert rec.calls == [("pay", ("due",))]
    assert sync_redis.get(LOCK) is None


async def test_worker_without_scheduler_leaves_delayed_jobs(store: Store, sync_redis: redis.Redis) -> None:
    rec = Recorder()
    registry = Registry()
    registry.register(lambda *a: rec.note("pay", a), "pay")
    worker = Worker(store, registry, options(scheduler=False, scheduler_interval_s=0.05))
    await enqueue_at(store, time.time() - 5, "q", "pay", ["delayed"])
    async with running(worker):
        await enqueue(store, "q", "pay", ["now"])
        await rec.wait_for(1)
        assert sync_redis.get(LOCK) is None

    assert worker.scheduler is None
    assert rec.calls == [("pay", ("now",))]
    assert await delayed_count(store) == 1


@pytest.mark.parametrize("args", [[], [{"nested": [1, {"x": None}]}, "café"]])
async def test_worker_performs_moved_job_with_same_args(store: Store, args: list[JSONValue]) -> None:
    rec = Recorder()
    registry = Registry()
    registry.register(lambda *a: rec.note("pay", a), "pay")
    await enqueue_at(store, time.time() - 1, "q", "pay", args)
    async with running(Worker(store, registry, options(scheduler_interval_s=0.05))):
        await rec.wait_for(1)

    assert rec.calls == [("pay", tuple(args))]
