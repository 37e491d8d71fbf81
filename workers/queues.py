"""Resque queues: enqueue, list, measure, peek and delete jobs."""

from __future__ import annotations

from collections.abc import Sequence

from workers.codec import Job, JSONValue, MalformedJob, decode_job, encode_job
from workers.connection import Store, as_bytes, as_text


async def enqueue(store: Store, queue: str, class_name: str, args: Sequence[JSONValue] = ()) -> bytes:
    """Push a job onto ``queue`` (and register the queue) in one step; return the stored bytes."""
    raw = encode_job(queue, class_name, list(args))
    await enqueue_raw(store, queue, raw)
    return raw


async def enqueue_raw(store: Store, queue: str, raw: bytes) -> None:
    """Push already-encoded job bytes onto ``queue``, registering the queue and waking payq workers."""
    keys = store.keys
    await store.enqueue(keys=[keys.queues, keys.queue(queue)], args=[queue, raw, keys.wake_channel])


async def enqueue_unique(
    store: Store, queue: str, class_name: str, args: Sequence[JSONValue], unique_key: str, retention_s: int
) -> bool:
    """Enqueue the job unless ``unique_key`` was used within ``retention_s``; True if it was enqueued.

    The check and the push are one atomic step, so any number of concurrent producers of the same
    job enqueue it exactly once.
    """
    keys = store.keys
    raw = encode_job(queue, class_name, list(args))
    pushed = await store.enqueue_unique(
        keys=[keys.unique(unique_key), keys.queues, keys.queue(queue)],
        args=[queue, raw, retention_s, keys.wake_channel],
    )
    return bool(pushed)


async def queue_names(store: Store) -> list[str]:
    """Every registered queue, sorted."""
    members = await store.redis.smembers(store.keys.queues)
    return sorted(as_text(m) for m in members)


async def queue_length(store: Store, queue: str) -> int:
    return int(await store.redis.llen(store.keys.queue(queue)))


async def queue_lengths(store: Store) -> dict[str, int]:
    """Each registered queue's length, in one round trip after the listing."""
    names = await queue_names(store)
    async with store.redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.llen(store.keys.queue(name))
        lengths = await pipe.execute()
    return dict(zip(names, (int(n) for n in lengths), strict=True))


async def peek(store: Store, queue: str, offset: int = 0, limit: int = 20) -> list[Job | bytes]:
    """Up to ``limit`` jobs from ``offset`` without removing them; undecodable entries come back raw."""
    if offset < 0 or limit <= 0:
        return []
    raws = await store.redis.lrange(store.keys.queue(queue), offset, offset + limit - 1)
    jobs: list[Job | bytes] = []
    for raw in raws:
        try:
            jobs.append(decode_job(as_bytes(raw)))
        except MalformedJob:
            jobs.append(as_bytes(raw))
    return jobs


async def delete_jobs(store: Store, queue: str, class_name: str, args: Sequence[JSONValue] | None = None) -> int:
    """Remove every job of ``class_name`` (with exactly ``args``, if given) from ``queue``.

    Jobs are matched by their decoded class and arguments, so node-resque's and Ruby's formats both
    match, and each match is removed by its raw stored bytes. Returns how many were removed.
    """
    key = store.keys.queue(queue)
    wanted = None if args is None else list(args)
    matches: set[bytes] = set()
    for raw in await store.redis.lrange(key, 0, -1):
        try:
            job = decode_job(as_bytes(raw))
        except MalformedJob:
            continue
        if job.class_name == class_name and (wanted is None or job.args == wanted):
            matches.add(job.raw)
    if not matches:
        return 0
    async with store.redis.pipeline(transaction=True) as pipe:
        for raw in matches:
            pipe.lrem(key, 0, raw)  # type: ignore[arg-type]
        removed = await pipe.execute()
    return sum(int(n) for n in removed)


async def remove_queue(store: Store, queue: str) -> int:
    """Delete a queue and its jobs; return how many jobs it held."""
    async with store.redis.pipeline(transaction=True) as pipe:
        pipe.llen(store.keys.queue(queue))
        pipe.delete(store.keys.queue(queue))
        pipe.srem(store.keys.queues, queue)
        length, _, _ = await pipe.execute()
    return int(length)
