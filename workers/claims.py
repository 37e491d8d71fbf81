"""Batching the slots' finish-and-claim steps: one script call per event-loop turn, however many slots.

Every slot of a worker process finishes a job and claims its next one in one atomic step
(``scripts.FINISH_AND_CLAIM``). When several slots reach that point in the same turn of the event
loop, which is what a busy queue of short jobs looks like, their steps travel together as one
script call: one round trip and one Lua call for the batch instead of one per job. Each slot is
still a Resque worker of its own with its own in-flight record; only the transport is shared
(workers.batching).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workers import scripts
from workers.batching import Coalescer
from workers.clock import iso_z
from workers.connection import Store, as_bytes, as_text

Claimed = tuple[str, bytes]
"""A claimed job: the queue it came from and its raw bytes."""

Reply = list[Any]
"""One slot's part of the script's reply: ``[counted]``, or ``[counted, queue, job, waiting]`` with a
job claimed (``waiting``: the jobs left in its queue)."""


@dataclass(frozen=True, slots=True)
class SlotKeys:
    """What the step needs to know about one slot."""

    name: str
    record_key: str
    processed_key: str


@dataclass(frozen=True, slots=True)
class _Step:
    slot: SlotKeys
    finished: bytes
    state_key: str


class ClaimBatcher:
    """Gathers the steps requested during one event-loop turn and sends them as one script call per
    queue list, over a pipe of their own where the deployment allows one (``Store.call_script``)."""

    def __init__(self, store: Store, max_batch: int = 64, on_waiting: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.on_waiting = on_waiting  # told how many jobs a claim left waiting in its queue, when any
        self._call = store.call_script(scripts.FINISH_AND_CLAIM)
        self._processed_key = store.keys.stat("processed")
        self._queue_keys: dict[tuple[str, ...], list[str]] = {}  # the list keys of each set of queues asked
        self._second, self._stamp = -1, ""
        self._coalescer: Coalescer[tuple[str, ...], _Step, Reply] = Coalescer(self._send, max_batch)

    def _run_at(self) -> str:
        """The claim time for the records, worked out once per second (it is written to the second)."""
        second = int(time.time())
        if second != self._second:
            self._second, self._stamp = second, iso_z(datetime.fromtimestamp(second, UTC))
        return self._stamp

    async def finish_and_claim(
        self, slot: SlotKeys, queues: tuple[str, ...], finished: bytes = b"", state_key: str = ""
    ) -> tuple[bool, Claimed | None]:
        """Count ``finished`` (the bytes of the job ``slot`` just performed, whose retry state is
        ``state_key``; empty when there is none) and claim the slot's next job from ``queues``.

        Returns whether ``finished`` was counted (False when dead-worker recovery had pushed it back
        already) and the claimed job, if any queue had one. Redis errors propagate to every slot of
        the batch; the step is safe to send again.
        """
        reply = await self._coalescer.submit(queues, _Step(slot, finished, state_key or slot.record_key))
        if len(reply) < 3:
            return bool(reply[0]), None
        if reply[3] and self.on_waiting is not None:
            self.on_waiting(reply[3])
        return bool(reply[0]), (as_text(reply[1]), as_bytes(reply[2]))

    def _list_keys(self, queues: tuple[str, ...]) -> list[str]:
        """The queues' list keys, named once for each set of queues (a wildcard worker's set changes
        only when a queue is added)."""
        list_keys = self._queue_keys.get(queues)
        if list_keys is None:
            if len(self._queue_keys) >= 64:
                self._queue_keys.clear()
            list_keys = self._queue_keys[queues] = [self.store.keys.queue(q) for q in queues]
        return list_keys

    def _send(self, queues: tuple[str, ...], batch: list[_Step]) -> Awaitable[list[Reply]]:
        slot_keys: list[str] = []
        slot_args: list[str | bytes] = []
        for step in batch:
            slot_keys += [step.slot.record_key, step.slot.processed_key, step.state_key]
            slot_args += [step.slot.name, step.finished]
        script_keys = [self._processed_key, *slot_keys, *self._list_keys(queues)]
        script_args = [self._run_at(), len(batch), *slot_args, *queues]
        return self._call(script_keys, script_args)
