from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import orjson
import pytest
import redis

from workers.claims import ClaimBatcher, SlotKeys
from workers.codec import encode_job
from workers.connection import Store
from workers.pipe import ScriptPipe


def slot_keys(name: str) -> SlotKeys:
    worker_id = f"{name}:q"
    return SlotKeys(name, f"resque:worker:{worker_id}", f"resque:stat:processed:{worker_id}")


def push(sync_redis: redis.Redis, queue: str, *jobs: bytes) -> None:
    sync_redis.sadd("resque:queues", queue)
    sync_redis.rpush(f"resque:queue:{queue}", *jobs)


@pytest.fixture(params=["pipe", "shared client"])
async def batcher(request: pytest.FixtureRequest, store: Store) -> ClaimBatcher:
    """The batcher over its own pipelined connection, and over the shared client (TLS, Sentinel, Cluster)."""
    shared = request.param == "shared client"
    claims = ClaimBatcher(Store(store.redis, store.keys, pipes=False) if shared else store)  # closed with ``store``
    assert isinstance(getattr(claims._call, "__self__", None), ScriptPipe) != shared
    return claims


def evalsha_calls(sync_redis: redis.Redis) -> int:
    stats = sync_redis.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


async def test_claim_jobs_for_several_slots_in_one_step(batcher: ClaimBatcher, sync_redis: redis.Redis) -> None:
    high, low = encode_job("high", "pay", [1]), encode_job("low", "pay", [2])
    push(sync_redis, "high", high)
    push(sync_redis, "low", low)
    await batcher.finish_and_claim(slot_keys("warmup"), ("none",))  # loads the script
    before = evalsha_calls(sync_redis)

    replies = await asyncio.gather(*(batcher.finish_and_claim(slot_keys(f"h:{n}"), ("high", "low")) for n in (1, 2, 3)))

    assert evalsha_calls(sync_redis) - before == 1
    assert replies == [(False, ("high", high)), (False, ("low", low)), (False, None)]
    record = sync_redis.get("resque:worker:h:1:q") or b""
    assert record.endswith(b',"payload":' + high + b"}")
    assert orjson.loads(record)["worker"] == "h:1"
    run_at = datetime.strptime(orjson.loads(record)["run_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(run_at.timestamp() - time.time()) < 2
    assert not sync_redis.exists("resque:worker:h:3:q")


async def test_a_claim_reports_the_jobs_it_left_waiting_in_its_queue(
    batcher: ClaimBatcher, sync_redis: redis.Redis
) -> None:
    jobs = [encode_job("q", "pay", [n]) for n in range(3)]
    push(sync_redis, "q", *jobs)
    push(sync_redis, "other", encode_job("other", "pay", ["not counted: another queue"]))
    waiting: list[int] = []
    batcher.on_waiting = waiting.append
    slot = slot_keys("h:1")

    first = await batcher.finish_and_claim(slot, ("q", "other"))
    second = await batcher.finish_and_claim(slot, ("q", "other"), jobs[0])
    third = await batcher.finish_and_claim(slot, ("q", "other"), jobs[1])

    assert [first, second, third] == [(False, ("q", jobs[0])), (True, ("q", jobs[1])), (True, ("q", jobs[2]))]
    assert waiting == [2, 1]  # the last claim emptied its queue: no one to wake


async def test_finish_and_claim_counts_job_and_clears_retry_state(
    batcher: ClaimBatcher, sync_redis: redis.Redis
) -> None:
    done, following = encode_job("q", "pay", ["a"]), encode_job("q", "pay", ["b"])
    push(sync_redis, "q", done, following)
    slot = slot_keys("h:1")
    assert await batcher.finish_and_claim(slot, ("q",)) == (False, ("q", done))
    sync_redis.set("resque:payq:retry:abc", b"[]")

    counted, claimed = await batcher.finish_and_claim(slot, ("q",), done, "resque:payq:retry:abc")

    assert counted and claimed == ("q", following)
    assert sync_redis.get("resque:stat:processed") == b"1"
    assert sync_redis.get("resque:stat:processed:h:1:q") == b"1"
    assert not sync_redis.exists("resque:payq:retry:abc")
    assert (sync_redis.get("resque:worker:h:1:q") or b"").endswith(following + b"}")


async def test_finish_and_claim_sent_again_hands_out_the_same_job(
    batcher: ClaimBatcher, sync_redis: redis.Redis
) -> None:
    done, following = encode_job("q", "pay", ["a"]), encode_job("q", "pay", ["b"])
    push(sync_redis, "q", done, following, encode_job("q", "pay", ["c"]))
    slot = slot_keys("h:1")
    await batcher.finish_and_claim(slot, ("q",))

    first = await batcher.finish_and_claim(slot, ("q",), done, "resque:payq:retry:x")
    again = await batcher.finish_and_claim(slot, ("q",), done, "resque:payq:retry:x")

    assert first == again == (True, ("q", following))
    assert sync_redis.get("resque:stat:processed") == b"1"
    assert sync_redis.llen("resque:queue:q") == 1


async def test_claim_hands_out_job_left_in_record(batcher: ClaimBatcher, sync_redis: redis.Redis) -> None:
    left = encode_job("q", "pay", ["left"])
    sync_redis.set(
        "resque:worker:h:1:q", b'{"queue":"q","run_at":"2026-12-03T15:40:37Z","worker":"h:1","payload":' + left + b"}"
    )
    push(sync_redis, "q", encode_job("q", "pay", ["next"]))

    assert await batcher.finish_and_claim(slot_keys("h:1"), ("q",)) == (False, ("q", left))
    assert sync_redis.llen("resque:queue:q") == 1


async def test_finish_and_claim_reports_job_pushed_back_by_recovery(
    batcher: ClaimBatcher, sync_redis: redis.Redis
) -> None:
    done = encode_job("q", "pay", ["a"])
    push(sync_redis, "q", done)
    slot = slot_keys("h:1")
    await batcher.finish_and_claim(slot, ("q",))
    sync_redis.delete("resque:worker:h:1:q")

    assert await batcher.finish_and_claim(slot, ("q",), done, "resque:payq:retry:x") == (False, None)
    assert sync_redis.get("resque:stat:processed") is None


async def test_claim_keeps_non_json_job_bytes(batcher: ClaimBatcher, sync_redis: redis.Redis) -> None:
    odd = b"not json at all"
    push(sync_redis, "q", odd)
    slot = slot_keys("h:1")
    assert await batcher.finish_and_claim(slot, ("q",)) == (False, ("q", odd))

    assert await batcher.finish_and_claim(slot, ("q",), odd, "resque:payq:retry:x") == (True, None)
    assert not sync_redis.exists("resque:worker:h:1:q")


async def test_requeue_pushes_back_the_job_the_record_holds(store: Store, sync_redis: redis.Redis) -> None:
    held = encode_job("q", "pay", [{"id": "bitcoin:aa:0", "amount": "0.10"}])
    sync_redis.set(
        "resque:worker:h:1:q", b'{"queue":"q","run_at":"2026-12-03T15:40:37Z","worker":"h:1","payload":' + held + b"}"
    )
    push(sync_redis, "q", encode_job("q", "pay", ["later"]))

    pushed = await store.requeue(keys=["resque:worker:h:1:q", "resque:queues"], args=["resque:queue:", "wake"])

    assert pushed == 1
    assert sync_redis.lindex("resque:queue:q", 0) == held
    assert not sync_redis.exists("resque:worker:h:1:q")
    assert await store.requeue(keys=["resque:worker:h:1:q", "resque:queues"], args=["resque:queue:", "wake"]) == 0


async def test_claims_find_each_set_of_queues_however_many_sets_were_asked_before(
    batcher: ClaimBatcher, sync_redis: redis.Redis
) -> None:
    # A wildcard worker asks for a new set of queues whenever one is added; the list keys named for
    # earlier sets are dropped in bulk past a bound, and every set still claims from its own lists.
    for n in range(100):
        job = encode_job(f"q{n}", "pay", [n])
        push(sync_redis, f"q{n}", job)
        assert await batcher.finish_and_claim(slot_keys(f"s:{n}"), (f"q{n}", "none")) == (False, (f"q{n}", job))
    assert len(batcher._queue_keys) <= 64
