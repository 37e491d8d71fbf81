from __future__ import annotations

import asyncio
import threading
import time

import orjson
import pytest
import redis

from tests.waiting import wait_until
from tests.workers.test_runtime import Recorder, options, running
from workers.codec import JSONValue, decode_job
from workers.connection import Store
from workers.delayed import list_delayed
from workers.errors import UnknownJob
from workers.jobs import Registry, job, specs_in
from workers.queues import enqueue, enqueue_raw
from workers.retry import RetryLater, RetryOverride, RetryPolicy, resolve_policy, retry_form, settle_job
from workers.runtime import Worker
from workers.timeouts import JobTimeout

FAST = {"scheduler_interval_s": 0.05}


# policies ------------------------------------------------------------------------------------------


def test_delay_doubles_up_to_cap_without_jitter() -> None:
    policy = RetryPolicy(attempts=10, backoff_s=2, backoff_cap_s=30, jitter=0)

    assert [policy.delay_s(n) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_delay_jitter_takes_off_at_most_its_share() -> None:
    policy = RetryPolicy(attempts=5, backoff_s=10, jitter=0.5)

    assert policy.delay_s(2, rand=lambda: 0.0) == 20
    assert policy.delay_s(2, rand=lambda: 0.999) == pytest.approx(10.01)


def test_retries_only_listed_exceptions_and_never_unknown_jobs() -> None:
    policy = RetryPolicy(attempts=3, retry_on=(ConnectionError,))

    assert policy.retries(ConnectionRefusedError())
    assert policy.retries(RetryLater(5))
    assert not policy.retries(ValueError())
    assert not RetryPolicy(attempts=3).retries(UnknownJob("x"))


def test_reject_policy_without_attempts() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_resolve_policy_prefers_override_then_declared_then_default() -> None:
    default = RetryPolicy(attempts=5, backoff_s=1)
    declared = RetryPolicy(attempts=3, backoff_s=7, retry_on=(OSError,))

    assert resolve_policy(None, default, None) == default
    assert resolve_policy(declared, default, None) == declared
    assert resolve_policy(declared, default, RetryOverride(attempts=9)) == RetryPolicy(
        attempts=9, backoff_s=7, retry_on=(OSError,)
    )


def test_job_decorator_carries_policy_and_timeout() -> None:
    policy = RetryPolicy(attempts=4)

    @job("settle", retry=policy, timeout_s=2.5)
    def settle(payment: JSONValue) -> None: ...

    [spec] = specs_in(type("module", (), {"settle": settle}))  # type: ignore[arg-type]
    assert (spec.name, spec.retry, spec.timeout_s) == ("settle", policy, 2.5)


def test_retry_form_keeps_args_bytes() -> None:
    ruby = b'{"class":"pay","args":[1.0,"caf\\u00e9",{"b":1,"a":2}],"queue":"q","extra":true}'
    node = b'{"class":"pay","queue":"q","args":[{"id":"x"},[]]}'

    assert retry_form(decode_job(ruby), "q") == b'{"class":"pay","queue":"q","args":[1.0,"caf\\u00e9",{"b":1,"a":2}]}'
    assert retry_form(decode_job(node), "q") == node
    assert retry_form(decode_job(node), "elsewhere") == node.replace(b'"q"', b'"elsewhere"')
    assert retry_form(decode_job(node[:-1] + b',"meta":1}'), "q") == node
    assert (
        retry_form(decode_job(b'{"class":"pay","args":"lone"}'), "q") == b'{"class":"pay","queue":"q","args":["lone"]}'
    )
    # Numbers keep their stored bytes whether a Python (1.0) or a JavaScript (1) producer wrote them.
    for stored in (
        b'{"class":"pay","queue":"q","args":[1.0,2.5,{"n":3.0}]}',
        b'{"class":"pay","queue":"q","args":[1,2.5]}',
    ):
        assert retry_form(decode_job(stored), "q") == stored


# the worker ----------------------------------------------------------------------------------------


class Flaky:
    """A job that fails its first ``failures`` calls, noting when each call started and ended."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[tuple[float, float, tuple[JSONValue, ...]]] = []
        self.rec = Recorder()

    def __call__(self, *args: JSONValue) -> None:
        started = time.time()
        failing = len(self.calls) < self.failures
        self.calls.append((started, time.time(), args))
        self.rec.note("flaky", args)
        if failing:
            raise self.error(f"downstream down (call {len(self.calls)})")


async def test_retry_job_failing_twice_then_succeeding(store: Store, sync_redis: redis.Redis) -> None:
    flaky = Flaky(failures=2)
    policy = RetryPolicy(attempts=3, backoff_s=1.5, jitter=0, retry_on=(ConnectionError,))
    registry = Registry()
    registry.register(flaky, "flaky", retry=policy)
    async with running(Worker(store, registry, options(**FAST))):
        await enqueue(store, "q", "flaky", [{"id": "bitcoin:aa:0"}, "café"])
        await flaky.rec.wait_for(3, timeout_s=15)
        await wait_until(lambda: sync_redis.get("resque:stat:processed") == b"1")

    assert [args for _, _, args in flaky.calls] == [({"id": "bitcoin:aa:0"}, "café")] * 3
    gaps = [flaky.calls[n + 1][0] - flaky.calls[n][1] for n in range(2)]
    assert gaps[0] >= 1.5 and gaps[1] >= 3.0  # never earlier than the backoff: 1.5 s, then 3 s
    assert sync_redis.get("resque:stat:failed") == b"2"
    assert sync_redis.llen("resque:failed") == 0
    assert list(sync_redis.scan_iter("resque:payq:retry:*")) == []
    assert sync_redis.zcard("resque:delayed_queue_schedule") == 0


async def test_retry_job_failing_always_ends_failed_with_history(store: Store, sync_redis: redis.Redis) -> None:
    flaky = Flaky(failures=99, error=TimeoutError)
    registry = Registry()
    registry.register(flaky, "doomed", retry=RetryPolicy(attempts=3, backoff_s=0.01, jitter=0))
    raw = b'{"class":"doomed","args":[1.0,"caf\\u00e9"],"queue":"q"}'
    retried = b'{"class":"doomed","queue":"q","args":[1.0,"caf\\u00e9"]}'
    async with running(Worker(store, registry, options(scheduler=False))) as task:
        await enqueue_raw(store, "q", raw)
        await flaky.rec.wait_for(1)
        await wait_until(lambda: sync_redis.zcard("resque:delayed_queue_schedule") == 1)
        [item] = await list_delayed(store)
        assert item.raw == retried
        assert sync_redis.smembers(b"resque:timestamps:" + retried) == {f"delayed:{item.timestamp_s}".encode()}
        assert not task.done()
    async with running(Worker(store, registry, options(**FAST))):
        await flaky.rec.wait_for(3, timeout_s=15)
        await wait_until(lambda: sync_redis.llen("resque:failed") == 1)

    [entry] = [orjson.loads(r) for r in sync_redis.lrange("resque:failed", 0, -1)]
    assert list(entry)[:7] == ["failed_at", "payload", "exception", "error", "backtrace", "worker", "queue"]
    assert entry["payload"] == {"class": "doomed", "queue": "q", "args": [1, "café"]}
    assert entry["exception"] == "TimeoutError" and entry["error"] == "downstream down (call 3)"
    assert entry["attempts"] == 3
    assert [(h["attempt"], h["exception"], h["error"]) for h in entry["history"]] == [
        (n, "TimeoutError", f"downstream down (call {n})") for n in (1, 2, 3)
    ]
    assert "retry_at" in entry["history"][0] and "retry_at" not in entry["history"][2]
    assert sync_redis.lrange("resque:failed", 0, -1)[0].find(b'"payload":' + retried) > 0
    assert sync_redis.get("resque:stat:failed") == b"3"
    assert list(sync_redis.scan_iter("resque:payq:retry:*")) == []


async def test_fail_at_once_on_exception_not_retried(store: Store, sync_redis: redis.Redis) -> None:
    flaky = Flaky(failures=99, error=ValueError)
    registry = Registry()
    registry.register(flaky, "picky", retry=RetryPolicy(attempts=5, retry_on=(ConnectionError,)))
    async with running(Worker(store, registry, options(**FAST))):
        await enqueue(store, "q", "picky", [1])
        await wait_until(lambda: sync_redis.llen("resque:failed") == 1)

    entry = orjson.loads(sync_redis.lindex("resque:failed", 0) or b"")
    assert entry["exception"] == "ValueError" and "attempts" not in entry
    assert sync_redis.zcard("resque:delayed_queue_schedule") == 0
    assert len(flaky.calls) == 1


async def test_settings_override_replaces_declared_attempts(store: Store, sync_redis: redis.Redis) -> None:
    flaky = Flaky(failures=99)
    registry = Registry()
    registry.register(flaky, "flaky", retry=RetryPolicy(attempts=5))
    overrides = {"flaky": RetryOverride(attempts=1)}
    async with running(Worker(store, registry, options(retry_overrides=overrides, **FAST))):
        await enqueue(store, "q", "flaky", [1])
        await wait_until(lambda: sync_redis.llen("resque:failed") == 1)

    assert sync_redis.zcard("resque:delayed_queue_schedule") == 0


async def test_default_policy_retries_undeclared_jobs(store: Store, sync_redis: redis.Redis) -> None:
    flaky = Flaky(failures=1)
    registry = Registry()
    registry.register(flaky, "flaky")
    default = RetryPolicy(attempts=2, backoff_s=0.01)
    async with running(Worker(store, registry, options(retry_default=default, **FAST))):
        await enqueue(store, "q", "flaky", [1])
        await flaky.rec.wait_for(2, timeout_s=10)
        await wait_until(lambda: sync_redis.get("resque:stat:processed") == b"1")

    assert sync_redis.llen("resque:failed") == 0


async def test_retry_later_delays_job_by_its_own_delay(store: Store, sync_redis: redis.Redis) -> None:
    calls: list[float] = []

    async def busy(*_: JSONValue) -> None:
        calls.append(time.time())
        if len(calls) == 1:
            raise RetryLater(60, "rate limited")

    registry = Registry()
    registry.register(busy, "busy", retry=RetryPolicy(attempts=2, retry_on=()))
    async with running(Worker(store, registry, options(scheduler=False))):
        await enqueue(store, "q", "busy", [1])
        await wait_until(lambda: sync_redis.zcard("resque:delayed_queue_schedule") == 1)

    [item] = await list_delayed(store)
    assert calls[0] + 60 <= item.timestamp_s <= calls[0] + 62
    state = orjson.loads(sync_redis.get(next(sync_redis.scan_iter("resque:payq:retry:*"))) or b"")
    assert [(h["attempt"], h["exception"], h["error"]) for h in state] == [(1, "RetryLater", "rate limited")]


async def test_async_job_past_time_limit_fails(store: Store, sync_redis: redis.Redis) -> None:
    cancelled = asyncio.Event()

    async def hang(*_: JSONValue) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    registry = Registry()
    registry.register(hang, "hang", timeout_s=0.2)
    async with running(Worker(store, registry, options(**FAST))):
        await enqueue(store, "q", "hang", [1])
        await wait_until(lambda: sync_redis.llen("resque:failed") == 1)

    entry = orjson.loads(sync_redis.lindex("resque:failed", 0) or b"")
    assert entry["exception"] == "JobTimeout" and "0.2s" in entry["error"]
    assert cancelled.is_set()


async def test_sync_job_past_time_limit_frees_its_slot_and_retries(store: Store, sync_redis: redis.Redis) -> None:
    release = threading.Event()
    rec = Recorder()
    registry = Registry()
    registry.register(lambda *a: release.wait(30), "stuck", timeout_s=0.2, retry=RetryPolicy(attempts=2))
    registry.register(lambda *a: rec.note("next", a), "next")
    try:
        async with running(Worker(store, registry, options(scheduler=False))):
            await enqueue(store, "q", "stuck", [1])
            await enqueue(store, "q", "next", [2])
            await rec.wait_for(1)
            await wait_until(lambda: sync_redis.zcard("resque:delayed_queue_schedule") == 1)
    finally:
        release.set()

    [item] = await list_delayed(store)
    assert item.raw == b'{"class":"stuck","queue":"q","args":[1]}'
    state = orjson.loads(sync_redis.get(next(sync_redis.scan_iter("resque:payq:retry:*"))) or b"")
    assert state[0]["exception"] == JobTimeout.__name__


async def test_settle_job_drops_outcome_when_record_gone(store: Store, sync_redis: redis.Redis) -> None:
    settled = await settle_job(
        store,
        record_key="resque:worker:gone:1:q",
        worker_id="gone:1:q",
        queue="q",
        raw=b'{"class":"pay","queue":"q","args":[]}',
        error=ConnectionError("down"),
        policy=RetryPolicy(attempts=3),
    )

    assert not settled.recorded
    assert sync_redis.get("resque:stat:failed") is None
    assert sync_redis.zcard("resque:delayed_queue_schedule") == 0
