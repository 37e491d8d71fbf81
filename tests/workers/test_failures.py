from __future__ import annotations

import orjson
import pytest
import redis

from workers.connection import Store
from workers.errors import EntryNotFound, StaleEntry
from workers.failures import (
    clear_failed,
    failed_count,
    failure_entry,
    list_failed,
    remove_failed,
    retry_all_failed,
    retry_failed,
)

JOB = b'{"class":"pay","queue":"bitcoin:incoming","args":[{"id":"x"}]}'
NODE_ENTRY = (
    b'{"worker":"vm:10945","queue":"math","payload":{"class":"add","queue":"math","args":[1,2]},'
    b'"exception":"TypeError","error":"kaboom","backtrace":["    at fn (file:1:2)"],'
    b'"failed_at":"Thu Dec 03 2026 15:40:42 GMT+0000 (Coordinated Universal Time)"}'
)


def test_failure_entry_uses_ruby_keys_and_raw_payload() -> None:
    entry = failure_entry(JOB, "bitcoin:incoming", "h:1:q", "ValueError", "bad", ["a.py:1:in `f'"])
    data = orjson.loads(entry)
    assert list(data) == ["failed_at", "payload", "exception", "error", "backtrace", "worker", "queue"]
    assert JOB in entry
    assert data["failed_at"].endswith(" UTC") and data["failed_at"][4] == "/"


async def test_retry_failed_moves_job_back_and_removes_entry(store: Store, sync_redis: redis.Redis) -> None:
    sync_redis.rpush("resque:failed", failure_entry(JOB, "bitcoin:incoming", "h:1:q", "E", "e", []), NODE_ENTRY)
    failure = await retry_failed(store, 0)
    assert failure.job is not None and failure.job.class_name == "pay"
    assert sync_redis.lrange("resque:queue:bitcoin:incoming", 0, -1) == [JOB]
    assert sync_redis.lrange("resque:failed", 0, -1) == [NODE_ENTRY]
    assert sync_redis.sismember("resque:queues", "bitcoin:incoming")


async def test_list_failed_reads_node_resque_entries(store: Store, sync_redis: redis.Redis) -> None:
    sync_redis.rpush("resque:failed", NODE_ENTRY)
    [failure] = await list_failed(store)
    assert (failure.exception, failure.error, failure.worker, failure.queue) == (
        "TypeError",
        "kaboom",
        "vm:10945",
        "math",
    )
    assert failure.failed_at is not None and failure.failed_at.year == 2026
    await retry_failed(store, 0)
    assert sync_redis.lrange("resque:queue:math", 0, -1) == [b'{"class":"add","queue":"math","args":[1,2]}']


async def test_remove_failed_refuses_stale_digest(store: Store, sync_redis: redis.Redis) -> None:
    sync_redis.rpush("resque:failed", NODE_ENTRY, failure_entry(JOB, "q", "w", "E", "e", []))
    [first, second] = await list_failed(store)
    with pytest.raises(StaleEntry):
        await remove_failed(store, 0, expected_digest=second.digest)
    await remove_failed(store, 0, expected_digest=first.digest)
    assert await failed_count(store) == 1
    with pytest.raises(EntryNotFound):
        await remove_failed(store, 5)


async def test_retry_all_and_clear_failed(store: Store, sync_redis: redis.Redis) -> None:
    sync_redis.rpush("resque:failed", NODE_ENTRY, NODE_ENTRY, b"not json")
    assert await retry_all_failed(store) == 2
    assert sync_redis.llen("resque:queue:math") == 2
    assert await clear_failed(store) == 1
    assert not sync_redis.exists("resque:failed")
