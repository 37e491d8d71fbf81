from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import redis

from workers.codec import JSONValue
from workers.connection import Store
from workers.delayed import (
    DuplicateDelayedJob,
    all_delayed,
    del_delayed,
    delayed_count,
    enqueue_at,
    enqueue_in,
    list_delayed,
    remove_delayed,
    scheduled_at,
    timestamp_of,
)

ARGS: list[JSONValue] = [{"id": "bitcoin:aa:0", "amount": "0.1"}, "café/₿", [], 7]
NODE_RAW = b'{"class":"pay","queue":"q","args":[{"id":"bitcoin:aa:0","amount":"0.1"},"caf\xc3\xa9/\xe2\x82\xbf",[],7]}'
SCHEDULER_RAW = (
    b'{"class":"pay","args":[{"id":"bitcoin:aa:0","amount":"0.1"},"caf\xc3\xa9/\xe2\x82\xbf",[],7],"queue":"q"}'
)


def plant(sync_redis: redis.Redis, timestamp_s: int, raw: bytes) -> None:
    """Write a delayed item as resque-scheduler does, one command at a time."""
    sync_redis.rpush(f"resque:delayed:{timestamp_s}", raw)
    sync_redis.sadd(b"resque:timestamps:" + raw, f"delayed:{timestamp_s}")
    sync_redis.zadd("resque:delayed_queue_schedule", {str(timestamp_s): timestamp_s})


def test_timestamp_of_rounds_like_node() -> None:
    assert timestamp_of(1000.4) == 1000
    assert timestamp_of(1000.5) == 1001
    assert timestamp_of(datetime(2026, 12, 3, 15, 40, 37, 600000, tzinfo=UTC)) == 1796312438


async def test_enqueue_at_writes_node_layout_bytes(store: Store, sync_redis: redis.Redis) -> None:
    ts = await enqueue_at(store, 1796312438.2, "q", "pay", ARGS)

    assert ts == 1796312438
    assert sync_redis.lrange("resque:delayed:1796312438", 0, -1) == [NODE_RAW]
    assert sync_redis.smembers(b"resque:timestamps:" + NODE_RAW) == {b"delayed:1796312438"}
    assert sync_redis.zrange("resque:delayed_queue_schedule", 0, -1, withscores=True) == [(b"1796312438", 1796312438.0)]
    assert sync_redis.llen("resque:queue:q") == 0


async def test_enqueue_at_refuses_duplicate_at_same_second(store: Store, sync_redis: redis.Redis) -> None:
    await enqueue_at(store, 2000, "q", "pay", ARGS)

    with pytest.raises(DuplicateDelayedJob):
        await enqueue_at(store, 2000.3, "q", "pay", ARGS)
    assert await enqueue_at(store, 2000, "q", "pay", ARGS, allow_duplicate=True) == 2000

    assert sync_redis.lrange("resque:delayed:2000", 0, -1) == [NODE_RAW, NODE_RAW]
    assert await delayed_count(store) == 2


async def test_enqueue_in_counts_from_now(store: Store) -> None:
    before = time.time()
    ts = await enqueue_in(store, 120, "q", "pay", ARGS)

    assert round(before + 120) <= ts <= round(time.time() + 120)
    assert await scheduled_at(store, "q", "pay", ARGS) == [ts]


async def test_scheduled_at_finds_both_key_orders(store: Store, sync_redis: redis.Redis) -> None:
    await enqueue_at(store, 3000, "q", "pay", ARGS)
    plant(sync_redis, 1000, SCHEDULER_RAW)
    plant(sync_redis, 2000, SCHEDULER_RAW)

    assert await scheduled_at(store, "q", "pay", ARGS) == [1000, 2000, 3000]
    assert await scheduled_at(store, "q", "pay", [*ARGS, 1]) == []
    assert await scheduled_at(store, "other", "pay", ARGS) == []


async def test_del_delayed_removes_both_key_orders_by_raw_bytes(store: Store, sync_redis: redis.Redis) -> None:
    await enqueue_at(store, 3000, "q", "pay", ARGS)
    await enqueue_at(store, 3000, "q", "pay", ["keep"])
    plant(sync_redis, 1000, SCHEDULER_RAW)
    ruby_float = b'{"class":"pay","args":[1.0],"queue":"q"}'
    plant(sync_redis, 1000, ruby_float)

    assert await del_delayed(store, "q", "pay", ARGS) == [1000, 3000]
    assert await del_delayed(store, "q", "pay", [1]) == [1000]

    assert not sync_redis.exists("resque:delayed:1000", b"resque:timestamps:" + SCHEDULER_RAW)
    assert not sync_redis.exists(b"resque:timestamps:" + NODE_RAW, b"resque:timestamps:" + ruby_float)
    assert sync_redis.zrange("resque:delayed_queue_schedule", 0, -1) == [b"3000"]
    assert sync_redis.lrange("resque:delayed:3000", 0, -1) == [b'{"class":"pay","queue":"q","args":["keep"]}']
    assert await del_delayed(store, "q", "pay", ARGS) == []


async def test_list_delayed_in_due_order_including_undecodable(store: Store, sync_redis: redis.Redis) -> None:
    await enqueue_at(store, 3000, "q", "pay", [3])
    plant(sync_redis, 1000, SCHEDULER_RAW)
    plant(sync_redis, 1000, b"not json")
    await enqueue_at(store, 2000, "q", "pay", [2])

    items = await list_delayed(store)

    assert [(i.timestamp_s, i.raw) for i in items] == [
        (1000, SCHEDULER_RAW),
        (1000, b"not json"),
        (2000, b'{"class":"pay","queue":"q","args":[2]}'),
        (3000, b'{"class":"pay","queue":"q","args":[3]}'),
    ]
    assert items[0].job is not None and items[0].job.args == ARGS and items[0].job.queue == "q"
    assert items[1].job is None
    assert [i.raw for i in await list_delayed(store, offset=1, limit=2)] == [items[1].raw, items[2].raw]
    grouped = await all_delayed(store)
    assert sorted(grouped) == [1000, 2000, 3000] and len(grouped[1000]) == 2


async def test_remove_delayed_takes_only_that_item(store: Store, sync_redis: redis.Redis) -> None:
    await enqueue_at(store, 1000, "q", "pay", ARGS)
    await enqueue_at(store, 1000, "q", "pay", [2])

    assert await remove_delayed(store, 1000, NODE_RAW) == 1
    assert sync_redis.zrange("resque:delayed_queue_schedule", 0, -1) == [b"1000"]
    assert await remove_delayed(store, 1000, b'{"class":"pay","queue":"q","args":[2]}') == 1

    assert sync_redis.zcard("resque:delayed_queue_schedule") == 0
    assert not sync_redis.exists("resque:delayed:1000")
    assert await remove_delayed(store, 1000, NODE_RAW) == 0
