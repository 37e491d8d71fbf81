"""The failed list: writing Ruby-style failure entries, and listing, retrying and removing them.

Entries carry Ruby Resque's keys in Ruby's order (``failed_at`` as ``%Y/%m/%d %H:%M:%S %Z``), so
resque-web parses them, and are compact JavaScript-style JSON with the job's stored bytes spliced
in, so node-resque's ``retryAndRemoveFailed`` (which matches by re-serialised value) finds them.
Entries written by node-resque or Ruby are read just as well.
"""

from __future__ import annotations

import hashlib
import traceback
from dataclasses import dataclass
from datetime import datetime

import orjson

from workers.clock import parse_any, ruby_failed_at, utcnow
from workers.codec import Job, MalformedJob, decode_job, dumps, member_raw
from workers.connection import Store, as_bytes
from workers.errors import EntryNotFound, StaleEntry


@dataclass(frozen=True, slots=True)
class Failure:
    """One entry of the failed list, parsed, with its position and stored bytes."""

    index: int
    raw: bytes
    queue: str | None
    job: Job | None
    exception: str
    error: str
    backtrace: list[str]
    worker: str
    failed_at: datetime | None
    retried_at: datetime | None

    @property
    def digest(self) -> str:
        """A short fingerprint of the stored entry, to tell it apart from one that took its place."""
        return entry_digest(self.raw)


def entry_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def format_backtrace(exc: BaseException) -> list[str]:
    """Frames in Ruby's ``file:line:in `method'`` form, innermost last as Python prints them."""
    frames = traceback.extract_tb(exc.__traceback__)
    return [f"{f.filename}:{f.lineno}:in `{f.name}'" for f in frames]


def failure_entry(
    job_raw: bytes,
    queue: str,
    worker_id: str,
    exception: str,
    error: str,
    backtrace: list[str],
    at: datetime | None = None,
) -> bytes:
    """Encode a failure entry with the job's stored bytes as its ``payload``."""
    try:
        orjson.loads(job_raw)
        payload = job_raw
    except orjson.JSONDecodeError:
        payload = dumps(job_raw.decode("utf-8", "replace"))
    head = dumps({"failed_at": ruby_failed_at(at or utcnow())})[:-1]
    tail = dumps(
        {
            "exception": exception,
            "error": error,
            "backtrace": list(backtrace),
            "worker": worker_id,
            "queue": queue,
        }
    )[1:]
    return head + b',"payload":' + payload + b"," + tail


def parse_failure(index: int, raw: bytes) -> Failure:
    """Read an entry written by payq, node-resque or Ruby Resque; tolerate missing fields."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return Failure(index, raw, None, None, "MalformedEntry", "not a JSON object", [], "", None, None)
    job = _payload_job(raw)
    queue = data.get("queue") if isinstance(data.get("queue"), str) else None
    backtrace = data.get("backtrace")
    return Failure(
        index=index,
        raw=raw,
        queue=queue or (job.queue if job else None),
        job=job,
        exception=str(data.get("exception") or ""),
        error=str(data.get("error") or ""),
        backtrace=[str(line) for line in backtrace] if isinstance(backtrace, list) else [],
        worker=str(data.get("worker") or ""),
        failed_at=parse_any(data.get("failed_at")),
        retried_at=parse_any(data.get("retried_at")),
    )


def _payload_job(raw: bytes) -> Job | None:
    try:
        payload = member_raw(raw, "payload")
        return decode_job(payload) if payload else None
    except (MalformedJob, UnicodeDecodeError):
        return None


async def failed_count(store: Store) -> int:
    return int(await store.redis.llen(store.keys.failed))


async def list_failed(store: Store, offset: int = 0, limit: int = 20) -> list[Failure]:
    """Up to ``limit`` entries from ``offset``, oldest first."""
    if offset < 0 or limit <= 0:
        return []
    raws = await store.redis.lrange(store.keys.failed, offset, offset + limit - 1)
    return [parse_failure(offset + i, as_bytes(raw)) for i, raw in enumerate(raws)]


async def get_failed(store: Store, index: int, expected_digest: str | None = None) -> Failure:
    raw = await store.redis.lindex(store.keys.failed, index) if index >= 0 else None
    if raw is None:
        raise EntryNotFound(f"no failed job at index {index}")
    failure = parse_failure(index, as_bytes(raw))
    if expected_digest is not None and failure.digest != expected_digest:
        raise StaleEntry(f"the failed job at index {index} has changed")
    return failure


async def retry_failed(store: Store, index: int, expected_digest: str | None = None) -> Failure:
    """Put the job back on its queue and take its entry off the failed list, in one step."""
    failure = await get_failed(store, index, expected_digest)
    if failure.job is None or failure.queue is None:
        raise StaleEntry(f"the failed job at index {index} has no job or queue to retry")
    if not await _move_back(store, failure):
        raise StaleEntry(f"the failed job at index {index} was removed meanwhile")
    return failure


async def _move_back(store: Store, failure: Failure) -> bool:
    if failure.job is None or failure.queue is None:
        return False
    keys = store.keys
    moved = await store.retry_failed(
        keys=[keys.failed, keys.queue(failure.queue), keys.queues],
        args=[failure.raw, failure.job.raw, failure.queue, keys.wake_channel],
    )
    return bool(moved)


async def remove_failed(store: Store, index: int, expected_digest: str | None = None) -> Failure:
    failure = await get_failed(store, index, expected_digest)
    removed = await store.redis.lrem(store.keys.failed, 1, failure.raw)  # type: ignore[arg-type]
    if not removed:
        raise StaleEntry(f"the failed job at index {index} was removed meanwhile")
    return failure


async def retry_all_failed(store: Store) -> int:
    """Retry every entry that names a job and a queue; return how many went back."""
    retried = 0
    for raw in await store.redis.lrange(store.keys.failed, 0, -1):
        retried += await _move_back(store, parse_failure(0, as_bytes(raw)))
    return retried


async def clear_failed(store: Store) -> int:
    """Delete the failed list; return how many entries it held."""
    async with store.redis.pipeline(transaction=True) as pipe:
        pipe.llen(store.keys.failed)
        pipe.delete(store.keys.failed)
        count, _ = await pipe.execute()
    return int(count)
