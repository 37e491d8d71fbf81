"""Coalescing Redis steps: the requests made during one turn of the event loop travel as one batch.

A busy process makes many small requests at once: ten worker slots finishing their jobs, or a
hundred webhook deliveries arriving together. Sent one by one, each costs a round trip and, mostly,
the client library's own work of packing the command and parsing the reply. A ``Coalescer`` gathers
the requests made in the same turn, groups them by a key the caller chooses (requests of one group
can share a script call), and hands each group to a send function as one batch. Every caller gets
its own result, or the batch's exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from functools import partial
from typing import Generic, TypeVar

GroupT = TypeVar("GroupT", bound=Hashable)
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

SendBatch = Callable[[GroupT, list[ItemT]], Awaitable[Sequence[ResultT]]]


class Coalescer(Generic[GroupT, ItemT, ResultT]):
    """Sends the items submitted during one event-loop turn as batches of at most ``max_batch`` per group.

    ``send(group, items)`` must return one result per item, in order. Whatever it raises is raised
    to every caller of the batch.
    """

    def __init__(self, send: SendBatch[GroupT, ItemT, ResultT], max_batch: int = 64) -> None:
        self._send_batch = send
        self.max_batch = max_batch
        self._pending: dict[GroupT, list[tuple[ItemT, asyncio.Future[ResultT]]]] = {}
        self._flushing = False
        self._sending: set[asyncio.Future[Sequence[ResultT]]] = set()

    async def submit(self, group: GroupT, item: ItemT) -> ResultT:
        """Send ``item`` with the others of its group submitted in this turn, and return its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        self._pending.setdefault(group, []).append((item, future))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flushing = False
        pending, self._pending = self._pending, {}
        for group, requests in pending.items():
            for start in range(0, len(requests), self.max_batch):
                self._send(group, requests[start : start + self.max_batch])

    def _send(self, group: GroupT, batch: list[tuple[ItemT, asyncio.Future[ResultT]]]) -> None:
        try:
            awaitable = self._send_batch(group, [item for item, _ in batch])
        except Exception as exc:
            self._settle(batch, exc, [])
            return
        # A send that returns a plain future (a call already written to Redis) costs no task; a
        # coroutine becomes one.
        sending = asyncio.ensure_future(awaitable)
        self._sending.add(sending)
        sending.add_done_callback(partial(self._sent, batch))

    def _sent(
        self, batch: list[tuple[ItemT, asyncio.Future[ResultT]]], sending: asyncio.Future[Sequence[ResultT]]
    ) -> None:
        self._sending.discard(sending)
        if sending.cancelled():
            self._settle(batch, asyncio.CancelledError(), [])
        elif (exc := sending.exception()) is not None:
            self._settle(batch, exc, [])
        elif len(results := sending.result()) != len(batch):
            self._settle(batch, RuntimeError(f"{len(results)} results for a batch of {len(batch)}"), [])
        else:
            self._settle(batch, None, results)

    @staticmethod
    def _settle(
        batch: list[tuple[ItemT, asyncio.Future[ResultT]]], exc: BaseException | None, results: Sequence[ResultT]
    ) -> None:
        if exc is not None:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
