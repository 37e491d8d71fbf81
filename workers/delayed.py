"""Delayed jobs in resque-scheduler's layout, as node-resque reads and writes it.

A job for later is stored three ways at once: its raw bytes pushed on ``delayed:<ts>``, the member
``delayed:<ts>`` added to the set ``timestamps:<raw job>``, and ``<ts>`` (score and member) in the
``delayed_queue_schedule`` sorted set. Timestamps are unix seconds. payq writes the job in
node-resque's form and key order, byte for byte what ``queue.encodeAt`` would write, so that
node-resque's ``scheduledAt``, ``delDelayed`` and ``allDelayed`` see payq's delayed jobs and its
scheduler can move them. Lookups by value try both key orders (node-resque's ``class, queue, args``
and resque-scheduler's ``class, args, queue``); removals use the raw bytes read from Redis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from workers.codec import Job, JSONValue, MalformedJob, decode_job, dumps, encode_job
from workers.connection import Store, as_bytes, as_text
from workers.delayed_scripts import ENQUEUE_AT, REMOVE_DELAYED
from workers.errors import ResqueError


class DuplicateDelayedJob(ResqueError):
    """The same job is already delayed to that second (node-resque refuses this too)."""


@dataclass(frozen=True, slots=True)
class DelayedJob:
    """One delayed item: when it is due, its stored bytes, and the job (None if undecodable)."""

    timestamp_s: int
    raw: bytes
    job: Job | None


def timestamp_of(at: datetime | float) -> int:
    """Unix seconds for ``at`` (a datetime or unix seconds), rounded as node-resque rounds."""
    seconds = at.timestamp() if isinstance(at, datetime) else float(at)
    return math.floor(seconds + 0.5)


async def enqueue_at(
    store: Store,
    at: datetime | float,
    queue: str,
    class_name: str,
    args: Sequence[JSONValue] = (),
    *,
    allow_duplicate: bool = False,
) -> int:
    """Store a job to be moved onto ``queue`` at ``at``; return its timestamp (unix seconds).

    Raises DuplicateDelayedJob when the same job is already due at that second, unless
    ``allow_duplicate``.
    """
    timestamp_s = timestamp_of(at)
    raw = encode_job(queue, class_name, list(args))
    if not await enqueue_raw_at(store, timestamp_s, raw, allow_duplicate=allow_duplicate):
        raise DuplicateDelayedJob(f"job {class_name} on {queue} is already delayed to {timestamp_s}")
    return timestamp_s


async def enqueue_in(
    store: Store,
    delay_s: float,
    queue: str,
    class_name: str,
    args: Sequence[JSONValue] = (),
    *,
    allow_duplicate: bool = False,
) -> int:
    """Store a job to be moved onto ``queue`` after ``delay_s`` seconds; return its timestamp."""
    return await enqueue_at(store, time.time() + delay_s, queue, class_name, args, allow_duplicate=allow_duplicate)


async def enqueue_raw_at(store: Store, timestamp_s: int, raw: bytes, *, allow_duplicate: bool = False) -> bool:
    """Store already-encoded job bytes for ``timestamp_s``; False if refused as a duplicate."""
    keys = store.keys
    member = keys.delayed_member(timestamp_s)
    stored = await store.script(ENQUEUE_AT)(
        keys=[keys.delayed_schedule, keys.delayed(timestamp_s), timestamps_key(store, raw)],
        args=[raw, timestamp_s, member, "1" if allow_duplicate else "0"],
    )
    return bool(stored)


def timestamps_key(store: Store, raw: bytes) -> bytes:
    """The ``timestamps:<raw job>`` key, built from the exact bytes (they need not be valid text)."""
    return store.keys.delayed_timestamps_prefix.encode() + raw


def lookup_forms(queue: str, class_name: str, args: Sequence[JSONValue]) -> list[bytes]:
    """The bytes a job may be delayed as: node-resque's key order, then resque-scheduler's."""
    node_form = encode_job(queue, class_name, list(args))
    scheduler_form = dumps({"class": class_name, "args": list(args), "queue": queue})
    return [node_form, scheduler_form]


async def scheduled_at(store: Store, queue: str, class_name: str, args: Sequence[JSONValue] = ()) -> list[int]:
    """The timestamps (unix seconds, ascending) a job is delayed to, found through ``timestamps:`` sets."""
    found: set[int] = set()
    for raw in lookup_forms(queue, class_name, args):
        for member in await store.redis.smembers(timestamps_key(store, raw)):
            timestamp_s = _member_timestamp(as_text(member))
            if timestamp_s is not None:
                found.add(timestamp_s)
    return sorted(found)


async def del_delayed(store: Store, queue: str, class_name: str, args: Sequence[JSONValue] = ()) -> list[int]:
    """Remove every delayed copy of a job, in either key order; return the timestamps it was at.

    Every delayed list is read and matched by decoded class, queue and arguments, so copies whose
    bytes differ from payq's encoding (Ruby's ``1.0``, escaped text) are found too; each is removed
    by the raw bytes it was stored as.
    """
    wanted = list(args)
    matches: set[tuple[int, bytes]] = set()
    for item in await list_delayed(store):
        job = item.job
        if job and job.class_name == class_name and job.queue == queue and job.args == wanted:
            matches.add((item.timestamp_s, item.raw))
    removed: set[int] = set()
    for timestamp_s, raw in matches:
        if await remove_delayed(store, timestamp_s, raw):
            removed.add(timestamp_s)
    return sorted(removed)


async def remove_delayed(store: Store, timestamp_s: int, raw: bytes) -> int:
    """Remove the job stored as ``raw`` from ``timestamp_s``; return how many copies went."""
    keys = store.keys
    removed = await store.script(REMOVE_DELAYED)(
        keys=[keys.delayed_schedule, keys.delayed(timestamp_s), timestamps_key(store, raw)],
        args=[raw, timestamp_s, keys.delayed_member(timestamp_s)],
    )
    return int(removed)


async def delayed_timestamps(store: Store, up_to_s: float = math.inf, limit: int | None = None) -> list[int]:
    """Timestamps with delayed jobs, ascending, up to ``up_to_s`` (all by default)."""
    upper = "+inf" if math.isinf(up_to_s) else math.floor(up_to_s)
    found = await store.redis.zrangebyscore(
        store.keys.delayed_schedule, "-inf", upper, start=0 if limit else None, num=limit
    )
    stamps = [_int_or_none(as_text(member)) for member in found if isinstance(member, bytes | str)]
    return [s for s in stamps if s is not None]


async def list_delayed(store: Store, offset: int = 0, limit: int | None = None) -> list[DelayedJob]:
    """Delayed jobs in due order (then stored order), ``limit`` of them from ``offset`` (all by default)."""
    items: list[DelayedJob] = []
    stop = None if limit is None else offset + limit
    for timestamp_s in await delayed_timestamps(store):
        for raw in await store.redis.lrange(store.keys.delayed(timestamp_s), 0, -1):
            items.append(DelayedJob(timestamp_s, as_bytes(raw), _decode_or_none(as_bytes(raw))))
            if stop is not None and len(items) >= stop:
                return items[offset:stop]
    return items[offset:stop]


async def delayed_page(store: Store, offset: int, limit: int) -> tuple[int, list[tuple[int, list[DelayedJob]]]]:
    """A page over the due times: how many there are in all, and from ``offset`` up to ``limit`` of
    them, each with at most ``limit`` of its jobs (in stored order)."""
    keys = store.keys
    total = int(await store.redis.zcard(keys.delayed_schedule))
    members = await store.redis.zrange(keys.delayed_schedule, offset, offset + limit - 1, withscores=True)
    stamps = [int(pair[1]) for pair in members]
    async with store.redis.pipeline(transaction=False) as pipe:
        for timestamp_s in stamps:
            pipe.lrange(keys.delayed(timestamp_s), 0, limit - 1)
        lists = await pipe.execute()
    page = []
    for timestamp_s, raws in zip(stamps, lists, strict=True):
        items = [DelayedJob(timestamp_s, as_bytes(raw), _decode_or_none(as_bytes(raw))) for raw in raws]
        page.append((timestamp_s, items))
    return total, page


async def all_delayed(store: Store) -> dict[int, list[DelayedJob]]:
    """Every delayed job by timestamp (unix seconds; node-resque's ``allDelayed`` keys are ms)."""
    grouped: dict[int, list[DelayedJob]] = {}
    for item in await list_delayed(store):
        grouped.setdefault(item.timestamp_s, []).append(item)
    return grouped


async def delayed_count(store: Store) -> int:
    """How many jobs are delayed, across every timestamp."""
    stamps = await delayed_timestamps(store)
    if not stamps:
        return 0
    async with store.redis.pipeline(transaction=False) as pipe:
        for timestamp_s in stamps:
            pipe.llen(store.keys.delayed(timestamp_s))
        lengths = await pipe.execute()
    return sum(int(n) for n in lengths)


def _member_timestamp(member: str) -> int | None:
    prefix, _, rest = member.rpartition(":")
    return _int_or_none(rest) if prefix else None


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _decode_or_none(raw: bytes) -> Job | None:
    try:
        return decode_job(raw)
    except MalformedJob:
        return None
