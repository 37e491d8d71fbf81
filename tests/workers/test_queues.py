from __future__ import annotations

import asyncio

import redis

from workers.codec import Job
from workers.connection import Store
from workers.queues import (
    delete_jobs,
    enqueue,
    enqueue_unique,
    peek,
    queue_length,
    queue_lengths,
    queue_names,
    remove_queue,
)


async def test_enqueue_job_writes_list_and_queue_set(store: Store, sync_redis: redis.Redis) -> None:
    await enqueue(store, "bitcoin:incoming", "log", [{"id": "bitcoin:ab:1", "amount": "0.1"}])
    assert sync_redis.lrange("resque:queue:bitcoin:incoming", 0, -1) == [
        b'{"class":"log","queue":"bitcoin:incoming","args":[{"id":"bitcoin:ab:1","amount":"0.1"}]}'
    ]
    assert sync_redis.smembers("resque:queues") == {b"bitcoin:incoming"}


async def test_enqueue_job_uses_namespace(redis_url: str, sync_redis: redis.Redis) -> None:
    store = Store.from_url(redis_url, "{payq}")
    try:
        await enqueue(store, "q", "c", [])
    finally:
        await store.close()
    assert sync_redis.llen("{payq}:queue:q") == 1
    assert sync_redis.sismember("{payq}:queues", "q")


async def test_queue_lengths_lists_every_queue(store: Store) -> None:
    for _ in range(3):
        await enqueue(store, "b", "c", [])
    await enqueue(store, "a", "c", [])
    assert await queue_names(store) == ["a", "b"]
    assert await queue_lengths(store) == {"a": 1, "b": 3}
    assert await queue_length(store, "b") == 3


async def test_peek_jobs_pages_without_removing(store: Store) -> None:
    for n in range(5):
        await enqueue(store, "q", "c", [n])
    page = await peek(store, "q", offset=1, limit=2)
    assert [j.args for j in page if isinstance(j, Job)] == [[1], [2]]
    assert await queue_length(store, "q") == 5
    assert await peek(store, "q", offset=-1) == []


async def test_delete_jobs_matches_both_formats(store: Store, sync_redis: redis.Redis) -> None:
    ruby = b'{"class":"Pay","args":[1,"a"]}'
    node = b'{"class":"Pay","queue":"q","args":[1,"a"]}'
    other = b'{"class":"Pay","queue":"q","args":[2]}'
    sync_redis.rpush("resque:queue:q", ruby, node, other, b'{"class":"Keep","args":[1,"a"]}', b"junk")
    assert await delete_jobs(store, "q", "Pay", [1, "a"]) == 2
    assert sync_redis.lrange("resque:queue:q", 0, -1) == [other, b'{"class":"Keep","args":[1,"a"]}', b"junk"]
    assert await delete_jobs(store, "q", "Pay") == 1
    assert sync_redis.llen("resque:queue:q") == 2


async def test_remove_queue_drops_list_and_membership(store: Store, sync_redis: redis.Redis) -> None:
    await enqueue(store, "q", "c", [])
    await enqueue(store, "q", "c", [])
    assert await remove_queue(store, "q") == 2
    assert not sync_redis.exists("resque:queue:q")
    assert not sync_redis.sismember("resque:queues", "q")


async def test_enqueue_unique_pushes_once_under_concurrency(store: Store, sync_redis: redis.Redis) -> None:
    results = await asyncio.gather(
        *(enqueue_unique(store, "q", "log", [{"id": "p1"}], "bitcoin:p1", 60) for _ in range(50))
    )
    assert results.count(True) == 1
    assert sync_redis.lrange("resque:queue:q", 0, -1) == [b'{"class":"log","queue":"q","args":[{"id":"p1"}]}']
    assert 0 < (sync_redis.ttl("resque:payq:unique:bitcoin:p1") or 0) <= 60
