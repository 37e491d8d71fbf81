from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from service.redis_server import RedisServer
from tests.waiting import wait_until
from workers.codec import JSONValue
from workers.connection import Store
from workers.jobs import Registry
from workers.queues import enqueue
from workers.runtime import Worker, WorkerOptions


def options(**overrides: Any) -> WorkerOptions:
    base: dict[str, Any] = {
        "queues": ("q",),
        "hostname": "testhost",
        "pid": 4242,
        "poll_interval_s": 30.0,
        "heartbeat_interval_s": 0.2,
        "worker_timeout_s": 1.0,
        "shutdown_grace_s": 5.0,
    }
    base.update(overrides)
    return WorkerOptions(**base)


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.started.wait(), 5)
    try:
        yield task
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


class Recorder:
    """Jobs that note their calls and let a test wait for them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[JSONValue, ...]]] = []
        self.changed = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def note(self, name: str, args: tuple[JSONValue, ...]) -> None:
        self.calls.append((name, args))
        self.loop.call_soon_threadsafe(self.changed.set)

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> None:
        async def until() -> None:
            while len(self.calls) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), timeout_s)


async def test_worker_performs_job_and_counts_it(store: Store, sync_redis: redis.Redis) -> None:
    rec = Recorder()
    registry = Registry()
    registry.register(lambda *a: rec.note("pay", a), "pay")
    worker = Worker(store, registry, options())
    async with running(worker):
        assert sync_redis.smembers("resque:workers") == {b"testhost:4242:q"}
        assert sync_redis.get("resque:worker:testhost:4242:q:started")
        ping = orjson.loads(sync_redis.get("resque:worker:ping:testhost:4242") or b"")
        assert ping["name"] == "testhost:4242" and ping["queues"] == "q" and isinstance(ping["time"], int)
        assert sync_redis.hget("resque:workers:heartbeat", "testhost:4242:q")
        await enqueue(store, "q", "pay", [{"id": "bitcoin:aa:0"}, 2])
        await rec.wait_for(1)
        await wait_until(lambda: sync_redis.get("resque:stat:processed") == b"1")
    assert rec.calls == [("pay", ({"id": "bitcoin:aa:0"}, 2))]
    assert sync_redis.get("resque:stat:failed") is None
    assert not sync_redis.exists("resque:worker:testhost:4242:q")
    assert sync_redis.smembers("resque:workers") == set()
    assert not sync_redis.exists("resque:worker:ping:testhost:4242")
    assert not sync_redis.hexists("resque:workers:heartbeat", "testhost:4242:q")


async def test_worker_records_job_in_flight_with_raw_payload(store: Store, sync_redis: redis.Redis) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(*_: JSONValue) -> None:
        started.set()
        await release.wait()

    registry = Registry()
    registry.register(slow, "slow")
    raw = b'{"class":"slow","args":[1.0,[],"\\u00e9/"]}'
    async with running(Worker(store, registry, options(poll_interval_s=0.05))):
        sync_redis.rpush("resque:queue:q", raw)
        await asyncio.wait_for(started.wait(), 5)
        record = sync_redis.get("resque:worker:testhost:4242:q") or b""
        assert record.startswith(b'{"queue":"q","run_at":"') and record.endswith(b',"payload":' + raw + b"}")
        parsed = orjson.loads(record)
        assert parsed["worker"] == "testhost:4242" and parsed["run_at"].endswith("Z")
        release.set()
        await wait_until(lambda: sync_redis.get("resque:stat:processed") == b"1")
        assert not sync_redis.exists("resque:worker:testhost:4242:q")


async def test_worker_fails_job_with_exception_and_backtrace(store: Store, sync_redis: redis.Redis) -> None:
    def boom(*_: JSONValue) -> None:
        raise ValueError("downstream said no")

    registry = Registry()
    registry.register(boom, "boom")
    async with running(Worker(store, registry, options())):
        raw = await enqueue(store, "q", "boom", [7])
        await enqueue(store, "q", "nobody", [])
        await wait_until(lambda: sync_redis.llen("resque:failed") == 2)
    first, second = (orjson.loads(e) for e in sync_redis.lrange("resque:failed", 0, -1))
    assert (first["exception"], first["error"], first["queue"]) == ("ValueError", "downstream said no", "q")
    assert first["worker"] == "testhost:4242:q"
    assert any("in `boom'" in line for line in first["backtrace"])
    assert raw in sync_redis.lindex("resque:failed", 0)  # type: ignore[operator]
    assert second["exception"] == "UnknownJob" and second["error"] == 'No job defined for class "nobody"'
    assert sync_redis.get("resque:stat:failed") == b"2"
    assert sync_redis.get("resque:stat:processed") is None


async def test_worker_runs_sync_jobs_off_the_event_loop(store: Store) -> None:
    rec = Recorder()
    registry = Registry()
    registry.register(lambda: rec.note(threading.current_thread().name, ()), "where")
    async with running(Worker(store, registry, options())):
        await enqueue(store, "q", "where", [])
        await rec.wait_for(1)
    assert rec.calls[0][0].startswith("payq-job")


async def test_worker_takes_queues_in_strict_priority(store: Store, sync_redis: redis.Redis) -> None:
    rec = Recorder()
    registry = Registry()
    registry.register(lambda n: rec.note("job", (n,)), "job")
    for n in range(3):
        sync_redis.rpush("resque:queue:low", orjson.dumps({"class": "job", "args": [f"low{n}"]}))
        sync_redis.rpush("resque:queue:high", orjson.dumps({"class": "job", "args": [f"high{n}"]}))
    async with running(Worker(store, registry, options(queues=("high", "low")))):
        await rec.wait_for(6)
    assert [args[0] for _, args in rec.calls] == ["high0", "high1", "high2", "low0", "low1", "low2"]


async def test_wildcard_worker_finds_new_queues(store: Store, sync_redis: redis.Redis) -> None:
    rec = Recorder()
    registry = Registry()
    registry.register(lambda q: rec.note("job", (q,)), "job")
    async with running(Worker(store, registry, options(queues=("*",), poll_interval_s=0.05))):
        assert sync_redis.smembers("resque:workers") == {b"testhost:4242:*"}
        await enqueue(store, "made-later", "job", ["payq"])
        await rec.wait_for(1)
        sync_redis.sadd("resque:queues", "foreign")
        sync_redis.rpush("resque:queue:foreign", b'{"class":"job","args":["ruby"]}')
        await rec.wait_for(2)
    assert sorted(args[0] for _, args in rec.calls) == ["payq", "ruby"]


async def test_idle_worker_wakes_on_payq_enqueue_before_poll(store: Store) -> None:
    rec = Recorder()
    registry = Registry()
    registry.register(lambda: rec.note("job", ()), "job")
    async with running(Worker(store, registry, options(poll_interval_s=60.0))):
        await asyncio.sleep(0)  # let the slot reach its idle wait
        await enqueue(store, "q", "job", [])
        await rec.wait_for(1, timeout_s=10.0)  # far below the 60 s poll: only the wake-up can do it


@pytest.mark.parametrize("own_connection", [True, False], ids=["own connection", "redis-py pubsub"])
async def test_a_worker_whose_wake_up_subscription_is_lost_subscribes_again(
    store: Store, sync_redis: redis.Redis, own_connection: bool
) -> None:
    store.pipes = own_connection  # without, the worker subscribes through redis-py, as over TLS
    rec = Recorder()
    registry = Registry()
    registry.register(lambda: rec.note("job", ()), "job")
    worker = Worker(store, registry, options(poll_interval_s=60.0))
    async with running(worker):
        await wait_until(lambda: sync_redis.pubsub_numsub(store.keys.wake_channel)[0][1] == 1)
        sync_redis.client_kill_filter(_type="pubsub")
        await wait_until(lambda: sync_redis.pubsub_numsub(store.keys.wake_channel)[0][1] == 1)
        await wait_until(lambda: len(worker._idle) == 1)
        await enqueue(store, "q", "job", [])
        await rec.wait_for(1, timeout_s=10.0)  # far below the 60 s poll: only the wake-up can do it


async def test_concurrent_slots_register_as_separate_workers(store: Store, sync_redis: redis.Redis) -> None:
    gate = asyncio.Event()
    running_count = 0
    peak = 0

    async def hold() -> None:
        nonlocal running_count, peak
        running_count += 1
        peak = max(peak, running_count)
        await gate.wait()
        running_count -= 1

    registry = Registry()
    registry.register(hold, "hold")
    async with running(Worker(store, registry, options(concurrency=3))):
        assert sync_redis.smembers("resque:workers") == {f"testhost:4242+{n}:q".encode() for n in (1, 2, 3)}
        for _ in range(3):
            await enqueue(store, "q", "hold", [])
        await wait_until(lambda: peak == 3)
        gate.set()
        await wait_until(lambda: sync_redis.get("resque:stat:processed") == b"3")


async def test_shutdown_lets_running_job_finish(store: Store, sync_redis: redis.Redis) -> None:
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.3)

    registry = Registry()
    registry.register(slow, "slow")
    worker = Worker(store, registry, options())
    async with running(worker):
        await enqueue(store, "q", "slow", [])
        await asyncio.wait_for(started.wait(), 5)
    assert sync_redis.get("resque:stat:processed") == b"1"
    assert sync_redis.llen("resque:queue:q") == 0


async def test_shutdown_pushes_back_job_past_grace(store: Store, sync_redis: redis.Redis) -> None:
    started = asyncio.Event()

    async def stuck(*_: JSONValue) -> None:
        started.set()
        await asyncio.Event().wait()

    registry = Registry()
    registry.register(stuck, "stuck")
    sync_redis.rpush("resque:queue:q", b'{"class":"other","args":[]}')
    async with running(Worker(store, registry, options(shutdown_grace_s=0.1, queues=("first", "q")))):
        # The unknown job fails first; only then does the stuck one arrive (it would be taken first).
        await wait_until(lambda: sync_redis.llen("resque:failed") == 1)
        raw = await enqueue(store, "first", "stuck", [1])
        await asyncio.wait_for(started.wait(), 5)
    assert sync_redis.lrange("resque:queue:first", 0, -1) == [raw]
    assert not sync_redis.exists("resque:worker:testhost:4242:first,q")
    assert sync_redis.get("resque:stat:failed") == b"1"  # the unknown "other" job, not the stuck one


def plant_dead_worker(sync_redis: redis.Redis, *, payq: bool, age_s: int = 100) -> bytes:
    worker_id = "deadhost:77:q"
    job = b'{"class":"pay","queue":"q","args":[[],{"k":1.5}]}'
    sync_redis.sadd("resque:workers", worker_id)
    sync_redis.set("resque:worker:deadhost:77:q:started", "2026-12-03 15:40:37 +0000")
    ping = {"time": int(time.time()) - age_s, "name": "deadhost:77", "queues": "q"}
    if payq:
        ping["payq"] = True
    sync_redis.set("resque:worker:ping:deadhost:77", orjson.dumps(ping))
    sync_redis.hset("resque:workers:heartbeat", worker_id, "2026-12-03T15:40:37+00:00")
    record = b'{"queue":"q","run_at":"2026-12-03T15:40:37Z","worker":"deadhost:77","payload":' + job + b"}"
    sync_redis.set("resque:worker:deadhost:77:q", record)
    sync_redis.rpush("resque:queue:q", b'{"class":"pay","queue":"q","args":["next"]}')
    return job


async def test_recover_dead_worker_pushes_job_back_once(store: Store, sync_redis: redis.Redis) -> None:
    job = plant_dead_worker(sync_redis, payq=True)
    workers = [Worker(store, Registry(), options(pid=100 + n)) for n in range(5)]
    # Recovery normally runs under a lock; here five workers race the atomic step itself.
    results = await asyncio.gather(*(w.recover_worker("deadhost:77:q") for w in workers))
    assert sum(results) == 1
    assert sync_redis.lrange("resque:queue:q", 0, -1)[0] == job
    assert sync_redis.llen("resque:queue:q") == 2
    for key in ("resque:worker:deadhost:77:q", "resque:worker:deadhost:77:q:started", "resque:worker:ping:deadhost:77"):
        assert not sync_redis.exists(key)
    assert sync_redis.smembers("resque:workers") == set()


async def test_recover_dead_foreign_worker_fails_its_job(store: Store, sync_redis: redis.Redis) -> None:
    plant_dead_worker(sync_redis, payq=False)
    assert await Worker(store, Registry(), options()).recover_dead_workers() == 1
    entry = orjson.loads(sync_redis.lindex("resque:failed", 0) or b"")
    assert entry["exception"] == "DeadWorker" and entry["queue"] == "q"
    assert entry["payload"]["class"] == "pay"
    assert sync_redis.llen("resque:queue:q") == 1


async def test_recover_leaves_live_workers_alone(store: Store, sync_redis: redis.Redis) -> None:
    plant_dead_worker(sync_redis, payq=True, age_s=0)
    assert await Worker(store, Registry(), options(worker_timeout_s=30.0)).recover_dead_workers() == 0
    assert sync_redis.sismember("resque:workers", "deadhost:77:q")


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_worker_performs_every_job_once(store: Store, sync_redis: redis.Redis, concurrency: int) -> None:
    seen: list[int] = []
    registry = Registry()
    registry.register(lambda n: seen.append(n), "count")
    for n in range(200):
        await enqueue(store, "q", "count", [n])
    async with running(Worker(store, registry, options(concurrency=concurrency))):
        await wait_until(lambda: sync_redis.get("resque:stat:processed") == b"200")
    assert sorted(seen) == list(range(200))


async def test_worker_waits_for_redis_at_start_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer(tmp_path / "late", durable=False)
    store = Store.from_url(server.url)
    worker = Worker(store, Registry(), options())
    task = asyncio.create_task(worker.run())
    try:
        with caplog.at_level(logging.WARNING, logger="workers.runtime"):
            await wait_until(lambda: "waiting for redis to register worker" in caplog.text)
        assert not task.done()
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(worker.started.wait(), 10)
        with redis.Redis(port=server.port) as check:
            assert check.smembers("resque:workers") == {b"testhost:4242:q"}
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)
        await store.close()
        server.stop()


async def test_busy_slots_share_script_calls_in_halves_on_one_connection(store: Store, sync_redis: redis.Redis) -> None:
    jobs = 600
    sync_redis.sadd("resque:queues", "q")
    sync_redis.rpush(
        "resque:queue:q", *[orjson.dumps({"class": "noop", "queue": "q", "args": [n]}) for n in range(jobs)]
    )
    registry = Registry()
    done = asyncio.Event()

    async def noop(n: int) -> None:
        if n == jobs - 1:
            done.set()

    registry.register(noop, "noop")
    calls_before = int(sync_redis.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))
    worker = Worker(store, registry, options(concurrency=10, scheduler=False))
    async with running(worker):
        await asyncio.wait_for(done.wait(), 10)
        await wait_until(lambda: sync_redis.get("resque:stat:processed") == str(jobs).encode())
        script_clients = [c for c in sync_redis.client_list() if c["cmd"] == "evalsha"]
    calls = int(sync_redis.info("commandstats")["cmdstat_evalsha"]["calls"]) - calls_before

    assert jobs / 5 <= calls < jobs / 2  # at most five steps (half the slots) per call, mostly more than two
    assert len(script_clients) == 1


async def test_a_lone_job_wakes_one_idle_slot_not_all_of_them(store: Store, sync_redis: redis.Redis) -> None:
    registry = Registry()
    registry.register(lambda n: None, "pay")
    worker = Worker(store, registry, options(concurrency=10, scheduler=False))
    claims: list[str] = []  # the slots that asked Redis for a job without finishing one
    finish_and_claim = worker._claims.finish_and_claim

    async def counting(slot: Any, queues: tuple[str, ...], finished: bytes = b"", state_key: str = "") -> Any:
        if not finished:
            claims.append(slot.name)
        return await finish_and_claim(slot, queues, finished, state_key)

    worker._claims.finish_and_claim = counting  # type: ignore[method-assign]
    async with running(worker):
        await wait_until(lambda: len(claims) == 10)  # each slot looked once at start, found nothing,
        await wait_until(lambda: len(worker._idle) == 10)  # and sleeps (one still asking would ask again)
        await enqueue(store, "q", "pay", [1])
        await wait_until(lambda: sync_redis.get("resque:stat:processed") == b"1")

    # One slot woke and took the job; its finish step found the queue empty; nine slept on.
    assert len(claims) == 11


async def test_a_burst_announced_by_one_wake_up_gets_every_slot(store: Store, sync_redis: redis.Redis) -> None:
    registry = Registry()
    started: list[int] = []
    all_started, release = asyncio.Event(), asyncio.Event()

    async def hold(n: int) -> None:
        started.append(n)
        if len(started) == 10:
            all_started.set()
        await release.wait()

    registry.register(hold, "hold")
    worker = Worker(store, registry, options(concurrency=10, scheduler=False, poll_interval_s=60.0))
    async with running(worker):
        await wait_until(lambda: len(worker._idle) == 10)  # every slot looked, found nothing, and waits
        sync_redis.sadd("resque:queues", "q")
        sync_redis.rpush(
            "resque:queue:q", *[orjson.dumps({"class": "hold", "queue": "q", "args": [n]}) for n in range(12)]
        )
        sync_redis.publish(
            store.keys.wake_channel, "q"
        )  # one wake-up for twelve jobs, as one batch of deliveries sends

        # The woken slot's claim leaves eleven waiting and wakes the other nine, long before the 60 s poll.
        await asyncio.wait_for(all_started.wait(), 10)
        release.set()
        await wait_until(lambda: sync_redis.get("resque:stat:processed") == b"12")

    assert sorted(started) == list(range(12))


async def test_idle_slots_that_poll_without_wake_ups_keep_no_stale_waiters(store: Store) -> None:
    # Jobs pushed by other Resque clients announce nothing: the slots find them by polling, and each
    # poll that times out must leave nothing behind in the list of slots waiting for a wake-up.
    worker = Worker(store, Registry(), options(concurrency=3, scheduler=False, poll_interval_s=0.01))
    polls: list[str] = []
    finish_and_claim = worker._claims.finish_and_claim

    async def counting(slot: Any, queues: tuple[str, ...], finished: bytes = b"", state_key: str = "") -> Any:
        polls.append(slot.name)
        return await finish_and_claim(slot, queues, finished, state_key)

    worker._claims.finish_and_claim = counting  # type: ignore[method-assign]
    async with running(worker):
        await wait_until(lambda: len(polls) >= 60)  # some twenty timed-out waits per slot
        assert len(worker._idle) <= 3


async def test_a_slot_cancelled_while_paused_stops_cleanly_even_if_a_wake_up_came_first(store: Store) -> None:
    # A stopping worker cancels its slots. A wake-up that arrives between the cancel and the slot's
    # own clean-up has already taken the cancelled waiter off the idle list; the slot must still end
    # with its cancellation, not with an error about the list.
    worker = Worker(store, Registry(), options(concurrency=1, scheduler=False))
    pause = asyncio.create_task(worker._pause(60))
    await wait_until(lambda: len(worker._idle) == 1)
    pause.cancel()
    worker._wake_up(1)
    with pytest.raises(asyncio.CancelledError):
        await pause
    assert not worker._idle
