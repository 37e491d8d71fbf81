"""The payq worker: claims Resque jobs, performs them, and never loses one.

One process runs ``concurrency`` slots. Each slot is a Resque worker of its own (``host:pid`` with
one slot, ``host:pid+n`` with several, as node-resque's MultiWorker names them), because Resque
records one in-flight job per worker. A slot claims a job and records it as in flight in one Lua
step and performs it. A job that succeeded is counted, and the slot's next job claimed, in one step
again; the steps of the slots that are ready at once travel as script calls of up to half the slots
each, pipelined on a connection of their own (``workers.claims``, ``workers.pipe``), so a busy
process makes one round trip per batch of jobs and performs one half's jobs while Redis runs the
other half's step. A failed job is recorded on its own (``workers.retry``).

Idle slots wait on a wake-up that payq producers publish with every enqueue, and still poll every
``poll_interval_s`` for jobs that other Resque clients push. A wake-up wakes one idle slot, so a
lone job costs one claim rather than one per slot; a claim that leaves jobs waiting in its queue
wakes an idle slot for each, so a burst soon has every slot, however few wake-ups announced it.

A failed job is retried through the delayed queue as its class's retry policy says (``workers.retry``),
and unless ``scheduler=False`` the process also runs a scheduler (``workers.scheduler``) that moves
delayed jobs onto their queues whenever it holds the leader lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workers.claims import ClaimBatcher, SlotKeys
from workers.clock import ruby_started, utcnow
from workers.codec import Job, decode_job
from workers.connection import Store, as_text
from workers.jobs import Registry
from workers.liveness import queue_heartbeats, recover_dead_workers, recover_worker
from workers.logs import log_info
from workers.retry import (
    NO_RETRY,
    RetryOverride,
    RetryPolicy,
    Settled,
    fingerprint,
    resolve_policy,
    retry_form,
    settle_job,
)
from workers.scheduler import Scheduler
from workers.timeouts import perform

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean "Redis is away for now" (a restart, a failover that demoted our master): wait
# and try again rather than give up.
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker runs; the CLI fills this from the settings."""

    queues: tuple[str, ...] = ("*",)
    concurrency: int = 1
    poll_interval_s: float = 1.0
    heartbeat_interval_s: float = 5.0
    worker_timeout_s: float = 30.0
    shutdown_grace_s: float = 25.0
    hostname: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    scheduler: bool = True
    scheduler_interval_s: float = 5.0
    scheduler_lock_timeout_s: int = 180
    retry_default: RetryPolicy = NO_RETRY
    retry_overrides: Mapping[str, RetryOverride] = field(default_factory=dict)

    @property
    def wildcard(self) -> bool:
        return "*" in self.queues


@dataclass(slots=True)
class _InFlight:
    job_raw: bytes
    queue: str


@dataclass(slots=True)
class Slot:
    """One Resque worker identity inside the process."""

    name: str
    id: str
    record_key: str
    keys: SlotKeys
    in_flight: _InFlight | None = None


JobListener = Callable[[str, str, float, bool], None]
"""Called after each job with its class, queue, duration in seconds, and whether it succeeded."""


class Worker:
    """A Resque worker process with ``options.concurrency`` slots."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        options: WorkerOptions | None = None,
        on_job: JobListener | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.options = options or WorkerOptions()
        self.on_job = on_job
        queues = ",".join(self.options.queues)
        base = f"{self.options.hostname}:{self.options.pid}"
        names = (
            [base] if self.options.concurrency == 1 else [f"{base}+{n}" for n in range(1, self.options.concurrency + 1)]
        )
        self.slots = [self._slot(name, f"{name}:{queues}") for name in names]
        # Half the slots per batch: while Redis runs one batch's step, the process performs the jobs
        # of the other half instead of waiting for the round trip (the pipe keeps both in flight).
        self._claims = ClaimBatcher(
            store, max_batch=max(1, (self.options.concurrency + 1) // 2), on_waiting=self._wake_up
        )
        self._policies: dict[str, RetryPolicy] = {}
        self._queues: tuple[str, ...] = () if self.options.wildcard else tuple(self.options.queues)
        self._stopping = asyncio.Event()
        self._idle: deque[asyncio.Future[None]] = deque()  # the slots waiting for a wake-up
        self._wakeups = 0  # wake-ups so far: a slot that sees it change while claiming claims again
        self._subscribed = asyncio.Event()
        self._executor = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="payq-job")
        self.started = asyncio.Event()
        self.scheduler = (
            Scheduler(
                store,
                base,
                interval_s=self.options.scheduler_interval_s,
                lock_timeout_s=self.options.scheduler_lock_timeout_s,
            )
            if self.options.scheduler
            else None
        )

    def _slot(self, name: str, worker_id: str) -> Slot:
        keys = self.store.keys
        record_key = keys.worker(worker_id)
        return Slot(name, worker_id, record_key, SlotKeys(name, record_key, keys.stat("processed", worker_id)))

    @property
    def ids(self) -> list[str]:
        return [slot.id for slot in self.slots]

    def stop(self) -> None:
        """Stop claiming jobs; running ones get ``shutdown_grace_s`` to finish."""
        if not self._stopping.is_set():
            logger.info("worker stopping ids=%s", ",".join(self.ids))
        self._stopping.set()
        self._wake_up(len(self._idle))

    async def run(self) -> None:
        """Register, work until stopped, then hand back unfinished jobs and unregister."""
        await self._register()
        background = [
            asyncio.create_task(self._heartbeat_loop(), name="payq-heartbeat"),
            asyncio.create_task(self._listen_for_wakeups(), name="payq-wakeups"),
        ]
        scheduling = asyncio.create_task(self.scheduler.run(), name="payq-scheduler") if self.scheduler else None
        if scheduling:
            background.append(scheduling)
        try:  # jobs enqueued from here on wake the slots; a slow subscription only costs latency
            await asyncio.wait_for(self._subscribed.wait(), self.options.poll_interval_s)
        except TimeoutError:
            logger.warning("wake-up subscription not ready; polling every %ss", self.options.poll_interval_s)
        slot_tasks = [asyncio.create_task(self._work(slot), name=f"payq-{slot.name}") for slot in self.slots]
        logger.info(
            "worker started ids=%s queues=%s concurrency=%d",
            ",".join(self.ids),
            ",".join(self.options.queues),
            self.options.concurrency,
        )
        self.started.set()
        try:
            await self._stopping.wait()
            await self._drain(slot_tasks)
        finally:
            if self.scheduler and scheduling:  # let it hand the leader lock over before tasks are cancelled
                self.scheduler.stop()
                await asyncio.wait({scheduling}, timeout=5.0)
            for task in background + slot_tasks:
                task.cancel()
            await asyncio.gather(*background, *slot_tasks, return_exceptions=True)
            await self._unregister()
            self._executor.shutdown(wait=False, cancel_futures=True)
            logger.info("worker stopped ids=%s", ",".join(self.ids))

    # lifecycle -------------------------------------------------------------------------------

    async def _register(self) -> None:
        """Register every slot; while Redis is not reachable yet, wait for it (until stopped)."""
        keys = self.store.keys
        backoff_s = 0.1
        while True:
            try:
                async with self.store.redis.pipeline(transaction=True) as pipe:
                    for slot in self.slots:
                        pipe.set(keys.worker_started(slot.id), ruby_started(utcnow()))
                    self._queue_heartbeats(pipe)
                    await pipe.execute()
                break
            except _REDIS_DOWN as exc:
                if self._stopping.is_set():
                    raise
                logger.warning("waiting for redis to register worker retry_in_s=%.1f error=%s", backoff_s, exc)
                await self._pause(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
        await self.recover_dead_workers()

    async def _unregister(self) -> None:
        keys = self.store.keys
        try:
            async with self.store.redis.pipeline(transaction=True) as pipe:
                for slot in self.slots:
                    pipe.srem(keys.workers, slot.id)
                    pipe.delete(
                        keys.worker_started(slot.id),
                        keys.worker_ping(slot.name),
                        keys.stat("processed", slot.id),
                        keys.stat("failed", slot.id),
                    )
                    pipe.hdel(keys.heartbeats, slot.id)
                await pipe.execute()
        except _REDIS_DOWN as exc:
            logger.warning("worker could not unregister error=%s", exc)

    async def _drain(self, slot_tasks: list[asyncio.Task[None]]) -> None:
        """Let running jobs finish within the grace period; push back whatever did not."""
        busy = [slot for slot in self.slots if slot.in_flight]
        if busy:
            logger.info("worker waiting for jobs count=%d grace_s=%s", len(busy), self.options.shutdown_grace_s)
        _, pending = await asyncio.wait(slot_tasks, timeout=self.options.shutdown_grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for slot in self.slots:
            if slot.in_flight:
                await self._requeue(slot, slot.in_flight)

    async def _requeue(self, slot: Slot, job: _InFlight) -> None:
        """Push back the job the slot's record holds (``job`` as far as the slot knows)."""
        keys = self.store.keys
        try:
            pushed = await self.store.requeue(
                keys=[slot.record_key, keys.queues],
                args=[keys.queue_prefix, keys.wake_channel],
            )
        except _REDIS_DOWN as exc:
            logger.error("unfinished job not pushed back worker=%s queue=%s error=%s", slot.id, job.queue, exc)
            return
        if pushed == 1:
            logger.warning("unfinished job pushed back worker=%s queue=%s", slot.id, job.queue)
        elif pushed < 0:
            logger.error("unfinished job left in its unreadable record worker=%s key=%s", slot.id, slot.record_key)
        slot.in_flight = None

    # heartbeats and recovery -----------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval = self.options.heartbeat_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.store.redis.pipeline(transaction=False) as pipe:
                    self._queue_heartbeats(pipe)
                    await pipe.execute()
                await self.recover_dead_workers()
            except _REDIS_DOWN as exc:
                logger.warning("heartbeat failed error=%s", exc)

    def _queue_heartbeats(self, pipe: Pipeline) -> None:
        queue_heartbeats(pipe, self.store, ((slot.name, slot.id) for slot in self.slots), ",".join(self.options.queues))

    async def recover_dead_workers(self) -> int:
        """Unregister workers whose heartbeat stopped and push their in-flight jobs back."""
        return await recover_dead_workers(
            self.store,
            own_ids=self.ids,
            lock_owner=self.slots[0].name,
            lock_ttl_ms=max(int(self.options.heartbeat_interval_s * 1000), 1000),
            timeout_s=self.options.worker_timeout_s,
            hostname=self.options.hostname,
        )

    async def recover_worker(self, worker_id: str) -> bool:
        """Unregister ``worker_id`` if its heartbeat is older than the timeout; True if this call did it."""
        return await recover_worker(self.store, worker_id, self.options.worker_timeout_s, self.options.hostname)

    # wake-ups --------------------------------------------------------------------------------

    def _wake_up(self, slots: int = 1) -> None:
        """Wake up to ``slots`` idle slots. A wake-up announces an enqueue, and one enqueue needs one
        slot, so a lone job does not send every slot to Redis for it. A claim that leaves jobs
        waiting in its queue wakes as many more (the claim batcher's ``on_waiting``): a burst, whether
        one wake-up announced it or none did, soon has every slot."""
        self._wakeups += 1
        while slots > 0 and self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                slots -= 1

    async def _listen_for_wakeups(self) -> None:
        channel = self.store.keys.wake_channel
        backoff_s = 0.1
        while True:
            subscription, pubsub = None, None
            try:
                # A connection of its own where the deployment allows (workers.pipe), else redis-py's.
                subscription = await self.store.subscribe(channel, self._on_wake_message)
                if subscription is None:
                    pubsub = self.store.redis.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(channel)
                backoff_s = 0.1
                self._subscribed.set()
                self._wake_up()  # anything enqueued while unsubscribed is claimed now
                if subscription is not None:
                    await subscription.lost
                elif pubsub is not None:
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._on_wake_message(message["data"])
            except _REDIS_DOWN as exc:
                logger.debug("wake-up subscription lost error=%s", exc)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self.options.poll_interval_s)
            finally:
                if subscription is not None:
                    subscription.close()
                if pubsub is not None:
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    def _on_wake_message(self, queue_name: bytes) -> None:
        queue = queue_name.decode()
        if self.options.wildcard and queue not in self._queues:
            self._queues = tuple(sorted({*self._queues, queue}))
        self._wake_up()

    # the slot loop ---------------------------------------------------------------------------

    async def _refresh_queues(self) -> None:
        if self.options.wildcard:
            members = await self.store.redis.smembers(self.store.keys.queues)
            self._queues = tuple(sorted(as_text(m) for m in members))

    async def _claim(
        self, slot: Slot, finished: bytes = b"", state_key: str = ""
    ) -> tuple[bool, tuple[str, bytes] | None]:
        """Claim the slot's next job, after counting ``finished`` (the bytes of a job the slot just
        performed, whose retry state is ``state_key``) in the same step; return whether ``finished``
        was counted, and the queue and bytes of the job claimed."""
        queues = self._queues
        if not queues and not finished:
            return False, None
        return await self._claims.finish_and_claim(slot.keys, queues, finished, state_key)

    async def _work(self, slot: Slot) -> None:
        backoff_s = 0.05
        idle = True
        claimed: tuple[str, bytes] | None = None
        looked = False  # the step that recorded the last job looked for a next one, and found none
        wakeups = self._wakeups
        while not self._stopping.is_set():
            if claimed is None and looked:  # the queues were empty a moment ago: wait before asking again
                looked, idle = False, True
                await self._wait_for_work(wakeups)
                continue
            if claimed is None:  # the previous job did not hand over a next one: claim on its own
                wakeups = self._wakeups
                try:
                    if idle:
                        await self._refresh_queues()
                    _, claimed = await self._claim(slot)
                except _REDIS_DOWN as exc:
                    logger.warning("claim failed worker=%s error=%s", slot.id, exc)
                    await self._pause(backoff_s)
                    backoff_s = min(backoff_s * 2, 5.0)
                    continue
                except RedisError:
                    logger.exception("claim failed worker=%s", slot.id)
                    await self._pause(5.0)
                    continue
                backoff_s = 0.05
                if claimed is None:
                    looked = True
                    continue
                idle = False
            queue, raw = claimed
            slot.in_flight = _InFlight(raw, queue)
            wakeups = self._wakeups
            try:
                looked, claimed = await self._perform(slot, queue, raw)
            except Exception:
                # A bug in recording the outcome must not end the slot; its job stays in the
                # in-flight record, which recovery or shutdown pushes back.
                logger.exception("job outcome not recorded worker=%s queue=%s", slot.id, queue)
                looked, claimed = False, None
                await self._pause(1.0)

    async def _wait_for_work(self, wakeups: int) -> None:
        """Wait for a wake-up, or the poll interval; not at all if one came since ``_wakeups`` was
        ``wakeups`` (the slot was asking Redis for a job then, and may have missed it)."""
        if wakeups == self._wakeups:
            await self._pause(self.options.poll_interval_s)

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less when woken up (``_wake_up``)."""
        if self._stopping.is_set():
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._idle.append(waiter)
        timer = loop.call_later(seconds, self._end_pause, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            # A slot cancelled while it waited leaves the list, unless a wake-up took it off first.
            if waiter.cancelled() and waiter in self._idle:
                self._idle.remove(waiter)

    def _end_pause(self, waiter: asyncio.Future[None]) -> None:
        """A pause ran its time without a wake-up: the slot stops waiting for one. (A woken slot has
        left ``_idle`` already; one that times out must leave it too, or a worker whose jobs are
        pushed by clients that announce nothing would gather a stale entry per slot per poll.)"""
        if not waiter.done():
            self._idle.remove(waiter)
            waiter.set_result(None)

    async def _perform(self, slot: Slot, queue: str, raw: bytes) -> tuple[bool, tuple[str, bytes] | None]:
        """Perform one job and record its outcome; return whether the same step looked for the slot's
        next job, and the job it claimed."""
        started = time.perf_counter()
        class_name = "?"
        error: BaseException | None = None
        job: Job | None = None
        try:
            job = decode_job(raw)
            class_name = job.class_name
            await self._call(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        duration_s = time.perf_counter() - started
        claimed: tuple[str, bytes] | None = None
        looked = False
        if error is None and job is not None and not self._stopping.is_set():
            settled, claimed = await self._finish_and_claim(slot, queue, job)
            looked = settled is not None
        else:
            settled = await self._finish(slot, queue, raw, error, self._policy(class_name))
        if settled and settled.retry_at_s is not None:
            logger.warning(
                "job failed, retry scheduled class=%s queue=%s worker=%s attempt=%d retry_at=%d exception=%s error=%s",
                class_name,
                queue,
                slot.id,
                settled.attempt,
                settled.retry_at_s,
                type(error).__name__,
                error,
            )
        elif error is None:
            log_info(
                logger,
                "job performed class=%s queue=%s worker=%s duration_ms=%.1f",
                class_name,
                queue,
                slot.id,
                duration_s * 1000,
            )
        else:
            logger.warning(
                "job failed class=%s queue=%s worker=%s exception=%s error=%s",
                class_name,
                queue,
                slot.id,
                type(error).__name__,
                error,
            )
        if self.on_job:
            self.on_job(class_name, queue, duration_s, error is None)
        return looked, claimed

    async def _call(self, job: Job) -> None:
        spec = self.registry.get(job.class_name)
        override = self.options.retry_overrides.get(job.class_name)
        timeout_s = override.timeout_s if override and override.timeout_s is not None else spec.timeout_s
        await perform(spec.func, job.args, is_async=spec.is_async, timeout_s=timeout_s, executor=self._executor)

    def _policy(self, class_name: str) -> RetryPolicy:
        policy = self._policies.get(class_name)
        if policy is None:
            declared = self.registry.get(class_name).retry if class_name in self.registry else None
            override = self.options.retry_overrides.get(class_name)
            policy = self._policies[class_name] = resolve_policy(declared, self.options.retry_default, override)
        return policy

    async def _finish_and_claim(
        self, slot: Slot, queue: str, job: Job
    ) -> tuple[Settled | None, tuple[str, bytes] | None]:
        """Count a performed job and claim the next in one step, retrying while Redis is away (the
        step may safely run twice)."""
        # Only a class that retries can have left a retry state behind to clear (it expires anyway).
        retries = self._policy(job.class_name).attempts > 1
        state_key = self.store.keys.retry_state(fingerprint(retry_form(job, queue))) if retries else ""
        recorded = await self._until_recorded(slot, queue, lambda: self._claim(slot, job.raw, state_key))
        if recorded is None:
            return None, None
        counted, claimed = recorded
        if not counted:
            logger.warning("job outcome dropped, job already pushed back worker=%s queue=%s", slot.id, queue)
        slot.in_flight = _InFlight(claimed[1], claimed[0]) if claimed else None
        return Settled(counted, 1), claimed

    async def _until_recorded(self, slot: Slot, queue: str, step: Callable[[], Awaitable[T]]) -> T | None:
        """Run a step that records a job's outcome, again while Redis is away (the job already ran,
        and each such step is safe to repeat); give up only when stopping, returning None."""
        backoff_s = 0.05
        while True:
            try:
                return await step()
            except _REDIS_DOWN as exc:
                if self._stopping.is_set() and backoff_s >= 1.0:
                    logger.error("job outcome not recorded worker=%s queue=%s error=%s", slot.id, queue, exc)
                    return None
                logger.warning("recording job outcome failed worker=%s error=%s", slot.id, exc)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)

    async def _finish(
        self, slot: Slot, queue: str, raw: bytes, error: BaseException | None, policy: RetryPolicy
    ) -> Settled | None:
        """Record the outcome; keep trying while Redis is away, since the job already ran."""
        settled = await self._until_recorded(
            slot,
            queue,
            lambda: settle_job(
                self.store,
                record_key=slot.record_key,
                worker_id=slot.id,
                queue=queue,
                raw=raw,
                error=error,
                policy=policy,
            ),
        )
        if settled is None:
            return None
        if not settled.recorded:
            logger.warning("job outcome dropped, job already pushed back worker=%s queue=%s", slot.id, queue)
        slot.in_flight = None
        return settled
