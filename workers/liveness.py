"""Worker liveness: the heartbeats a worker sends, and recovering workers whose heartbeats stopped.

A heartbeat is written both as node-resque's ``worker:ping:<name>`` (unix seconds, read by payq and
by node-resque's scheduler) and in Ruby's ``workers:heartbeat`` hash. A worker whose ping is older
than the timeout is dead: a live worker unregisters it and pushes its in-flight job back to the
head of its queue, in one Lua step that runs once per dead worker however many notice at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import orjson
from redis.asyncio.client import Pipeline

from workers.clock import iso_offset, ruby_failed_at, utcnow
from workers.connection import Store, as_text
from workers.status import split_worker_id

logger = logging.getLogger(__name__)

_OUTCOMES = {1: "idle", 2: "job pushed back", 3: "job moved to failed"}


def queue_heartbeats(pipe: Pipeline, store: Store, identities: Iterable[tuple[str, str]], queues: str) -> None:
    """Add a heartbeat for each ``(name, worker id)`` to ``pipe``. Re-adding the id to the workers
    set re-registers a worker whose registration a Redis failover lost."""
    keys = store.keys
    now_s = int(time.time())
    stamp = iso_offset(utcnow())
    for name, worker_id in identities:
        pipe.sadd(keys.workers, worker_id)
        pipe.set(keys.worker_ping(name), orjson.dumps({"time": now_s, "name": name, "queues": queues, "payq": True}))
        pipe.hset(keys.heartbeats, worker_id, stamp)


async def recover_worker(store: Store, worker_id: str, timeout_s: float, hostname: str) -> bool:
    """Unregister ``worker_id`` if its heartbeat is older than ``timeout_s``; True if this call did."""
    keys = store.keys
    host, pid, _ = split_worker_id(worker_id)
    result = await store.recover(
        keys=[
            keys.workers,
            keys.worker(worker_id),
            keys.worker_started(worker_id),
            keys.worker_ping(f"{host}:{pid}"),
            keys.heartbeats,
            keys.stat("processed", worker_id),
            keys.stat("failed", worker_id),
            keys.failed,
            keys.queues,
        ],
        args=[
            worker_id,
            int(time.time()),
            timeout_s,
            keys.queue_prefix,
            keys.wake_channel,
            ruby_failed_at(utcnow()),
            hostname,
        ],
    )
    if result < 1:
        return False
    logger.warning("dead worker recovered id=%s outcome=%s", worker_id, _OUTCOMES[int(result)])
    return True


async def recover_dead_workers(
    store: Store, *, own_ids: Iterable[str], lock_owner: str, lock_ttl_ms: int, timeout_s: float, hostname: str
) -> int:
    """Recover every registered worker (but ``own_ids``) whose heartbeat stopped; return how many.

    The lock keeps the scan to one worker at a time across the fleet; correctness does not rest
    on it, since each recovery is a single atomic step.
    """
    keys = store.keys
    if not await store.redis.set(keys.recovery_lock, lock_owner, nx=True, px=lock_ttl_ms):
        return 0
    mine = set(own_ids)
    recovered = 0
    for member in await store.redis.smembers(keys.workers):
        worker_id = as_text(member)
        if worker_id not in mine and await recover_worker(store, worker_id, timeout_s, hostname):
            recovered += 1
    return recovered
