"""The scheduler: moves delayed jobs onto their queues when they fall due, from one leader at a time.

Leadership is node-resque's lock, ``<ns>:resque_scheduler_leader_lock``, holding the leader's name
(``host:pid``): taken with ``SET NX EX`` and renewed on every poll while its value is still our
name, so a payq scheduler and a node-resque scheduler on the same namespace elect one leader
between them. A leader that stops gives the lock up at once; one that dies loses it when it expires
(``lock_timeout_s``, 180 s as in node-resque), and whichever scheduler polls next takes over.

Moving is one Lua script per batch of one timestamp (pop, forget the ``timestamps:`` member, push
onto the queue, clean up the empty timestamp), so a scheduler killed at any point loses no job and
moves none twice. Even two schedulers that both believe they lead (a lock expired under a stalled
leader) cannot double a job: each item is popped by exactly one script.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workers.clock import ruby_failed_at, utcnow
from workers.connection import Store
from workers.delayed import delayed_timestamps
from workers.delayed_scripts import MOVE_DUE, RELEASE_LEAD, TRY_LEAD

logger = logging.getLogger(__name__)

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class Scheduler:
    """Moves due delayed jobs while it holds the leader lock."""

    def __init__(
        self,
        store: Store,
        name: str,
        *,
        interval_s: float = 5.0,
        lock_timeout_s: int = 180,
        batch_size: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.name = name
        self.interval_s = interval_s
        self.lock_timeout_s = lock_timeout_s
        self.batch_size = batch_size
        self.clock = clock
        self.leader = False
        self._stopping = asyncio.Event()

    async def try_lead(self) -> bool:
        """Take the leader lock, or renew it if it is ours; True while this scheduler leads."""
        held = await self.store.script(TRY_LEAD)(
            keys=[self.store.keys.scheduler_lock], args=[self.name, self.lock_timeout_s]
        )
        self._set_leader(bool(held))
        return self.leader

    async def release(self) -> bool:
        """Give up the leader lock if this scheduler holds it; True if it did."""
        released = await self.store.script(RELEASE_LEAD)(keys=[self.store.keys.scheduler_lock], args=[self.name])
        self._set_leader(False)
        return bool(released)

    async def poll(self) -> int:
        """Lead if possible, and if leading move every due job; return how many were moved."""
        if not await self.try_lead():
            return 0
        return await self.move_due()

    async def move_due(self) -> int:
        """Move every job due by now onto its queue, timestamp by timestamp; return how many moved."""
        moved = 0
        while not self._stopping.is_set():
            due = await delayed_timestamps(self.store, self.clock(), limit=1)
            if not due:
                break
            moved += await self.move_timestamp(due[0])
        return moved

    async def move_timestamp(self, timestamp_s: int) -> int:
        """Move every job stored at ``timestamp_s``, a batch per script call; return how many moved."""
        keys = self.store.keys
        move = self.store.script(MOVE_DUE)
        moved = 0
        while True:
            count, left = await move(
                keys=[keys.delayed_schedule, keys.delayed(timestamp_s), keys.queues, keys.failed],
                args=[
                    timestamp_s,
                    keys.delayed_member(timestamp_s),
                    self.batch_size,
                    keys.delayed_timestamps_prefix,
                    keys.queue_prefix,
                    keys.wake_channel,
                    ruby_failed_at(utcnow()),
                    self.name,
                ],
            )
            moved += int(count)
            if int(left) == 0 or self._stopping.is_set():
                break
        if moved:
            logger.info("delayed jobs moved timestamp=%d count=%d scheduler=%s", timestamp_s, moved, self.name)
        return moved

    def stop(self) -> None:
        """Stop polling; ``run`` then releases the lock and returns."""
        self._stopping.set()

    async def run(self) -> None:
        """Poll every ``interval_s`` until stopped, then hand the lock over."""
        logger.info("scheduler started name=%s interval_s=%s", self.name, self.interval_s)
        try:
            while not self._stopping.is_set():
                await self._poll_safely()
                try:
                    await asyncio.wait_for(self._stopping.wait(), self.interval_s)
                except TimeoutError:
                    pass
        finally:
            try:
                if await self.release():
                    logger.info("scheduler released leader lock name=%s", self.name)
            except (*_REDIS_DOWN, RedisError) as exc:
                logger.warning("scheduler could not release leader lock name=%s error=%s", self.name, exc)
            logger.info("scheduler stopped name=%s", self.name)

    async def _poll_safely(self) -> None:
        try:
            await self.poll()
        except _REDIS_DOWN as exc:
            logger.warning("scheduler poll failed name=%s error=%s", self.name, exc)
        except RedisError:
            logger.exception("scheduler poll failed name=%s", self.name)

    def _set_leader(self, leading: bool) -> None:
        if leading and not self.leader:
            logger.info("scheduler leading name=%s", self.name)
        elif self.leader and not leading:
            logger.info("scheduler no longer leading name=%s", self.name)
        self.leader = leading
