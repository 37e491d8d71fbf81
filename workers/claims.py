"""Batching the slots' finish-and-claim steps: one script call per event-loop turn, however many slots.

Every slot of a worker process finishes a job and claims its next one in one atomic step
(``scripts.FINISH_AND_CLAIM``). When several slots reach that point in the same turn of the event
loop, which is what a busy queue of short jobs looks like, their steps travel together as one
script call: one round trip and one Lua call for the batch instead of one per job. Each slot is
still a Resque worker of its own with its own in-flight record; only the transport is shared.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from workers.clock import iso_z, utcnow
from workers.connection import Store, as_bytes, as_text

Claimed = tuple[str, bytes]
"""A claimed job: the queue it came from and its raw bytes."""


@dataclass(frozen=True, slots=True)
class SlotKeys:
    """What the step needs to know about one slot."""

    name: str
    record_key: str
    processed_key: str


@dataclass(slots=True)
class _Request:
    slot: SlotKeys
    finished: bytes
    state_key: str
    future: asyncio.Future[tuple[bool, Claimed | None]]


@dataclass(slots=True)
class ClaimBatcher:
    """Gathers the steps requested during one event-loop turn and sends them as one script call per
    queue list."""

    store: Store
    max_batch: int = 64
    _pending: dict[tuple[str, ...], list[_Request]] = field(default_factory=dict)
    _flushing: bool = False
    _sending: set[asyncio.Task[None]] = field(default_factory=set)

    async def finish_and_claim(
        self, slot: SlotKeys, queues: tuple[str, ...], finished: bytes = b"", state_key: str = ""
    ) -> tuple[bool, Claimed | None]:
        """Count ``finished`` (the bytes of the job ``slot`` just performed, whose retry state is
        ``state_key``; empty when there is none) and claim the slot's next job from ``queues``.

        Returns whether ``finished`` was counted (False when dead-worker recovery had pushed it back
        already) and the claimed job, if any queue had one. Redis errors propagate to every slot of
        the batch; the step is safe to send again.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bool, Claimed | None]] = loop.create_future()
        self._pending.setdefault(queues, []).append(_Request(slot, finished, state_key or slot.record_key, future))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flushing = False
        pending, self._pending = self._pending, {}
        for queues, requests in pending.items():
            for start in range(0, len(requests), self.max_batch):
                batch = requests[start : start + self.max_batch]
                task = asyncio.ensure_future(self._send(queues, batch))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _send(self, queues: tuple[str, ...], batch: list[_Request]) -> None:
        keys = self.store.keys
        slot_keys: list[str] = []
        slot_args: list[str | bytes] = []
        for request in batch:
            slot_keys += [request.slot.record_key, request.slot.processed_key, request.state_key]
            slot_args += [request.slot.name, request.finished]
        try:
            replies = await self.store.finish_and_claim(
                keys=[keys.stat("processed"), *slot_keys, *(keys.queue(q) for q in queues)],
                args=[iso_z(utcnow()), len(batch), *slot_args, *queues],
            )
        except BaseException as exc:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for request, reply in zip(batch, replies, strict=True):
            claimed = (as_text(reply[1]), as_bytes(reply[2])) if len(reply) == 3 else None
            if not request.future.done():
                request.future.set_result((bool(int(reply[0])), claimed))
