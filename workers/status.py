"""Who is working on what: registered workers, their in-flight jobs, and the counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from workers.clock import parse_any
from workers.codec import Job, MalformedJob, decode_job, member_raw
from workers.connection import Store, as_text
from workers.queues import queue_lengths


@dataclass(frozen=True, slots=True)
class WorkingOn:
    """A worker's in-flight job as its record describes it."""

    queue: str
    run_at: datetime | None
    job: Job | None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A registered Resque worker, whichever client runs it."""

    id: str
    host: str
    pid: str
    queues: list[str]
    started: datetime | None
    heartbeat: datetime | None
    working_on: WorkingOn | None

    @property
    def name(self) -> str:
        return f"{self.host}:{self.pid}"


def split_worker_id(worker_id: str) -> tuple[str, str, list[str]]:
    """``host:pid:q1,q2`` into its parts, as Ruby Resque splits it."""
    host, _, rest = worker_id.partition(":")
    pid, _, queues = rest.partition(":")
    return host, pid, [q for q in queues.split(",") if q]


def parse_record(raw: bytes | None) -> WorkingOn | None:
    """Read a ``worker:<id>`` record written by payq, node-resque or Ruby Resque."""
    data = _json_object(raw)
    if data is None or raw is None:
        return None
    try:
        payload = member_raw(raw, "payload")
        job = decode_job(payload) if payload else None
    except (MalformedJob, UnicodeDecodeError):
        job = None
    run_at = data.get("run_at")
    return WorkingOn(str(data.get("queue") or ""), parse_any(run_at if isinstance(run_at, str) else None), job)


def _ping_time(raw: bytes | None) -> datetime | None:
    data = _json_object(raw)
    time = data.get("time") if data else None
    return parse_any(time) if isinstance(time, str | int | float) else None


def _json_object(raw: bytes | None) -> dict[str, object] | None:
    """``raw`` parsed, if it is a JSON object; None for anything else, absent or malformed."""
    if not raw:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


async def list_workers(store: Store) -> list[WorkerInfo]:
    """Every worker in the ``workers`` set, with its record, start time and latest heartbeat."""
    keys = store.keys
    ids = sorted(as_text(m) for m in await store.redis.smembers(keys.workers))
    async with store.redis.pipeline(transaction=False) as pipe:
        for worker_id in ids:
            host, pid, _ = split_worker_id(worker_id)
            pipe.get(keys.worker(worker_id))
            pipe.get(keys.worker_started(worker_id))
            pipe.get(keys.worker_ping(f"{host}:{pid}"))
            pipe.hget(keys.heartbeats, worker_id)
        replies = await pipe.execute()
    workers = []
    for i, worker_id in enumerate(ids):
        record, started, ping, heartbeat = replies[4 * i : 4 * i + 4]
        host, pid, queues = split_worker_id(worker_id)
        beats = [t for t in (_ping_time(ping), parse_any(heartbeat.decode()) if heartbeat else None) if t]
        workers.append(
            WorkerInfo(
                id=worker_id,
                host=host,
                pid=pid,
                queues=queues,
                started=parse_any(started.decode()) if started else None,
                heartbeat=max(beats) if beats else None,
                working_on=parse_record(record),
            )
        )
    return workers


@dataclass(frozen=True, slots=True)
class Stats:
    """The counters resque-web shows on its overview."""

    processed: int
    failed: int
    queues: dict[str, int]
    workers: int
    working: int
    failed_list: int

    @property
    def pending(self) -> int:
        return sum(self.queues.values())


async def read_stats(store: Store) -> Stats:
    keys = store.keys
    lengths = await queue_lengths(store)
    workers = await list_workers(store)
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.stat("processed"))
        pipe.get(keys.stat("failed"))
        pipe.llen(keys.failed)
        processed, failed, failed_list = await pipe.execute()
    return Stats(
        processed=int(processed or 0),
        failed=int(failed or 0),
        queues=lengths,
        workers=len(workers),
        working=sum(1 for w in workers if w.working_on),
        failed_list=int(failed_list),
    )
