"""The admin API: queues, workers, failed and delayed jobs, and counters, over payq's Redis.

Every route needs ``Authorization: Bearer <PAYQ_ADMIN_TOKEN>``. A missing or wrong token gets 401;
when no admin token is configured the routes answer 503 and say so, so an unset token never means
an open admin API. Entries are read whichever Resque client wrote them (payq, node-resque, Ruby).

Single failed entries are addressed by index *and* the ``digest`` the listing gave for it: if the
list changed meanwhile the entry at that index is another one, and the answer is 409, not a retry
or removal of the wrong job. Redis being unreachable is a 503.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, JsonValue
from redis.exceptions import RedisError

from service.app import get_app_settings, get_store
from service.settings import Settings
from workers import failures, queues
from workers.codec import Job
from workers.connection import Store
from workers.delayed import delayed_page
from workers.errors import EntryNotFound, StaleEntry
from workers.status import WorkerInfo, list_workers, read_stats

logger = logging.getLogger(__name__)

MAX_PAGE = 500
MAX_OFFSET = 2**31
DEFAULT_PAGE = 50

_bearer = HTTPBearer(auto_error=False, description="PAYQ_ADMIN_TOKEN")


def require_admin(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    settings: Annotated[Settings, Depends(get_app_settings)],
) -> None:
    """Let the request through only with the configured admin token, compared in constant time."""
    if settings.admin_token is None or not settings.admin_token.get_secret_value():
        raise HTTPException(503, "the admin API is disabled: set PAYQ_ADMIN_TOKEN to enable it")
    supplied = credentials.credentials if credentials else ""
    expected = settings.admin_token.get_secret_value()
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise HTTPException(401, "a valid admin bearer token is required", headers={"WWW-Authenticate": "Bearer"})


class _RedisAwareRoute(APIRoute):
    """Answers 503 instead of 500 when Redis cannot be reached during an admin request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (RedisError, OSError) as exc:
                logger.warning("admin request failed on redis path=%s error=%s", request.url.path, exc)
                return JSONResponse({"detail": "Redis is unavailable"}, status_code=503)

        return guarded


_errors: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong admin token"},
    503: {"description": "No admin token configured, or Redis unavailable"},
}
router = APIRouter(
    tags=["admin"], dependencies=[Depends(require_admin)], route_class=_RedisAwareRoute, responses=_errors
)

StoreDep = Annotated[Store, Depends(get_store)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="first entry to return")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"entries to return, at most {MAX_PAGE}")]
QueueName = Annotated[str, Path(min_length=1, max_length=200)]
Index = Annotated[int, Path(ge=0, le=MAX_OFFSET)]
Digest = Annotated[str, Query(min_length=1, max_length=64, description="the entry's digest from GET /failed")]


# models ------------------------------------------------------------------------------------------


class QueueInfo(BaseModel):
    name: str
    length: int


class QueueList(BaseModel):
    queues: list[QueueInfo]


class JobView(BaseModel):
    job_class: str | None = Field(None, serialization_alias="class")
    args: list[JsonValue] | None = None
    queue: str | None = None
    raw: str | None = Field(None, description="the stored entry, when it is not a readable job")


class JobPage(BaseModel):
    queue: str
    total: int
    offset: int
    limit: int
    jobs: list[JobView]


class Count(BaseModel):
    count: int


class WorkerView(BaseModel):
    id: str
    host: str
    pid: str
    queues: list[str]
    started: datetime | None
    heartbeat: datetime | None
    heartbeat_age_s: float | None
    working_on: JobView | None
    working_since: datetime | None


class WorkerList(BaseModel):
    workers: list[WorkerView]


class FailureView(BaseModel):
    index: int
    digest: str
    queue: str | None
    job_class: str | None = Field(None, serialization_alias="class")
    args: list[JsonValue] | None
    exception: str
    error: str
    backtrace: list[str]
    worker: str
    failed_at: datetime | None
    retried_at: datetime | None


class FailurePage(BaseModel):
    total: int
    offset: int
    limit: int
    failures: list[FailureView]


class DelayedSlot(BaseModel):
    timestamp: int
    at: datetime
    jobs: list[JobView]


class DelayedPage(BaseModel):
    total: int
    offset: int
    limit: int
    delayed: list[DelayedSlot]


class StatsView(BaseModel):
    processed: int
    failed: int
    pending: int
    queues: int
    workers: int
    working: int
    failed_list: int


# views -------------------------------------------------------------------------------------------


def job_view(entry: Job | bytes) -> JobView:
    if isinstance(entry, bytes):
        return JobView(raw=entry.decode("utf-8", "replace"))
    return JobView(job_class=entry.class_name, args=list(entry.args), queue=entry.queue)


def worker_view(worker: WorkerInfo, now: datetime) -> WorkerView:
    doing = worker.working_on
    return WorkerView(
        id=worker.id,
        host=worker.host,
        pid=worker.pid,
        queues=worker.queues,
        started=worker.started,
        heartbeat=worker.heartbeat,
        heartbeat_age_s=round((now - worker.heartbeat).total_seconds(), 3) if worker.heartbeat else None,
        working_on=(job_view(doing.job) if doing.job else JobView(queue=doing.queue)) if doing else None,
        working_since=doing.run_at if doing else None,
    )


def failure_view(failure: failures.Failure) -> FailureView:
    return FailureView(
        index=failure.index,
        digest=failure.digest,
        queue=failure.queue,
        job_class=failure.job.class_name if failure.job else None,
        args=list(failure.job.args) if failure.job else None,
        exception=failure.exception,
        error=failure.error,
        backtrace=failure.backtrace,
        worker=failure.worker,
        failed_at=failure.failed_at,
        retried_at=failure.retried_at,
    )


def _not_found(detail: str) -> HTTPException:
    return HTTPException(404, detail)


# queues ------------------------------------------------------------------------------------------


@router.get("/queues", summary="Every queue and its length")
async def get_queues(store: StoreDep) -> QueueList:
    lengths = await queues.queue_lengths(store)
    return QueueList(queues=[QueueInfo(name=name, length=n) for name, n in lengths.items()])


async def _require_queue(store: Store, queue: str) -> int:
    length = await queues.queue_length(store, queue)
    if length == 0 and not await store.redis.sismember(store.keys.queues, queue):
        raise _not_found(f"no queue named {queue!r}")
    return length


@router.get(
    "/queues/{queue}/jobs",
    summary="The jobs waiting in a queue, a page at a time",
    responses={404: {"description": "No such queue"}},
)
async def get_queue_jobs(store: StoreDep, queue: QueueName, offset: Offset = 0, limit: Limit = DEFAULT_PAGE) -> JobPage:
    total = await _require_queue(store, queue)
    jobs = await queues.peek(store, queue, offset, limit)
    return JobPage(queue=queue, total=total, offset=offset, limit=limit, jobs=[job_view(j) for j in jobs])


@router.delete(
    "/queues/{queue}/jobs",
    summary="Remove the jobs of one class (and, if given, exactly these arguments) from a queue",
    responses={404: {"description": "No such queue"}, 422: {"description": "args is not a JSON array"}},
)
async def delete_queue_jobs(
    store: StoreDep,
    queue: QueueName,
    job_class: Annotated[str, Query(alias="class", min_length=1, max_length=200)],
    args: Annotated[str | None, Query(max_length=65536, description="a JSON array the arguments must equal")] = None,
) -> Count:
    wanted: list[JsonValue] | None = None
    if args is not None:
        try:
            parsed = orjson.loads(args)
        except orjson.JSONDecodeError as exc:
            raise HTTPException(422, "args must be a JSON array") from exc
        if not isinstance(parsed, list):
            raise HTTPException(422, "args must be a JSON array")
        wanted = parsed
    await _require_queue(store, queue)
    removed = await queues.delete_jobs(store, queue, job_class, wanted)
    logger.info("admin removed jobs queue=%s class=%s count=%s", queue, job_class, removed)
    return Count(count=removed)


@router.delete(
    "/queues/{queue}", summary="Delete a queue and its jobs", responses={404: {"description": "No such queue"}}
)
async def delete_queue(store: StoreDep, queue: QueueName) -> Count:
    await _require_queue(store, queue)
    removed = await queues.remove_queue(store, queue)
    logger.info("admin removed queue queue=%s jobs=%s", queue, removed)
    return Count(count=removed)


# workers and stats -------------------------------------------------------------------------------


@router.get("/workers", summary="Registered workers, what they work on and their heartbeat")
async def get_workers(store: StoreDep) -> WorkerList:
    now = datetime.now(UTC)
    return WorkerList(workers=[worker_view(w, now) for w in await list_workers(store)])


@router.get("/stats", summary="Processed and failed counters, pending jobs, queues and workers")
async def get_stats(store: StoreDep) -> StatsView:
    stats = await read_stats(store)
    return StatsView(
        processed=stats.processed,
        failed=stats.failed,
        pending=stats.pending,
        queues=len(stats.queues),
        workers=stats.workers,
        working=stats.working,
        failed_list=stats.failed_list,
    )


# failed jobs -------------------------------------------------------------------------------------

_entry_errors: dict[int | str, dict[str, Any]] = {
    404: {"description": "No failed entry at that index"},
    409: {"description": "The entry at that index is not the one with that digest (the list changed)"},
}


@router.get("/failed", summary="Failed jobs, oldest first, a page at a time")
async def get_failed(store: StoreDep, offset: Offset = 0, limit: Limit = DEFAULT_PAGE) -> FailurePage:
    total = await failures.failed_count(store)
    page = await failures.list_failed(store, offset, limit)
    return FailurePage(total=total, offset=offset, limit=limit, failures=[failure_view(f) for f in page])


@router.post("/failed/retry-all", summary="Put every failed job back on its queue")
async def retry_all_failed(store: StoreDep) -> Count:
    retried = await failures.retry_all_failed(store)
    logger.info("admin retried all failed jobs count=%s", retried)
    return Count(count=retried)


@router.delete("/failed", summary="Delete every failed entry")
async def clear_failed(store: StoreDep) -> Count:
    removed = await failures.clear_failed(store)
    logger.info("admin cleared failed jobs count=%s", removed)
    return Count(count=removed)


@contextmanager
def _entry_errors_as_http() -> Iterator[None]:
    """A missing entry is a 404; one that changed since the caller listed it, a 409."""
    try:
        yield
    except EntryNotFound as exc:
        raise _not_found(str(exc)) from exc
    except StaleEntry as exc:
        raise HTTPException(409, str(exc)) from exc


@router.post("/failed/{index}/retry", summary="Put one failed job back on its queue", responses=_entry_errors)
async def retry_failed(store: StoreDep, index: Index, digest: Digest) -> FailureView:
    with _entry_errors_as_http():
        failure = await failures.retry_failed(store, index, digest)
    logger.info("admin retried failed job index=%s queue=%s", index, failure.queue)
    return failure_view(failure)


@router.delete("/failed/{index}", summary="Remove one failed entry", responses=_entry_errors)
async def remove_failed(store: StoreDep, index: Index, digest: Digest) -> FailureView:
    with _entry_errors_as_http():
        failure = await failures.remove_failed(store, index, digest)
    logger.info("admin removed failed job index=%s queue=%s", index, failure.queue)
    return failure_view(failure)


# delayed jobs ------------------------------------------------------------------------------------


@router.get("/delayed", summary="Delayed jobs by the time they become due")
async def get_delayed(store: StoreDep, offset: Offset = 0, limit: Limit = DEFAULT_PAGE) -> DelayedPage:
    total, page = await delayed_page(store, offset, limit)
    slots = [
        DelayedSlot(
            timestamp=stamp,
            at=datetime.fromtimestamp(stamp, UTC),
            jobs=[job_view(item.job if item.job else item.raw) for item in items],
        )
        for stamp, items in page
    ]
    return DelayedPage(total=total, offset=offset, limit=limit, delayed=slots)
