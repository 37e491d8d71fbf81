"""The Coalescer: what is submitted in one event-loop turn travels as batches, and every caller gets
its own result or the batch's error, never a hang."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from workers.batching import Coalescer


class Sends:
    """Records each batch; answers every item with its double."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []

    async def send(self, group: str, items: list[int]) -> list[int]:
        self.batches.append((group, items))
        return [item * 2 for item in items]


async def test_one_turns_submissions_travel_as_batches_per_group_of_at_most_max_batch() -> None:
    sends = Sends()
    coalescer: Coalescer[str, int, int] = Coalescer(sends.send, max_batch=3)

    results = await asyncio.gather(*(coalescer.submit("a" if n < 5 else "b", n) for n in range(7)))

    assert results == [n * 2 for n in range(7)]
    assert sends.batches == [("a", [0, 1, 2]), ("a", [3, 4]), ("b", [5, 6])]
    assert await coalescer.submit("a", 10) == 20  # a later turn, a batch of its own
    assert sends.batches[-1] == ("a", [10])


async def test_a_send_that_returns_a_plain_future_settles_each_caller() -> None:
    loop = asyncio.get_running_loop()
    sent: list[list[int]] = []

    def send(group: None, items: list[int]) -> Awaitable[Sequence[int]]:
        sent.append(items)
        answer: asyncio.Future[Sequence[int]] = loop.create_future()
        loop.call_soon(answer.set_result, [item + 1 for item in items])
        return answer

    coalescer: Coalescer[None, int, int] = Coalescer(send)

    assert await asyncio.gather(*(coalescer.submit(None, n) for n in range(4))) == [1, 2, 3, 4]
    assert sent == [[0, 1, 2, 3]]


async def test_a_send_that_fails_before_returning_fails_every_caller_of_its_batch() -> None:
    calls = 0

    def send(group: None, items: list[int]) -> Awaitable[Sequence[int]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("cannot pack")
        return Sends().send("", items)

    coalescer: Coalescer[None, int, int] = Coalescer(send)
    results = await asyncio.gather(*(coalescer.submit(None, n) for n in range(3)), return_exceptions=True)

    assert [type(r) for r in results] == [ValueError] * 3
    assert await coalescer.submit(None, 4) == 8


async def test_an_async_send_that_raises_fails_every_caller_of_its_batch() -> None:
    async def send(group: None, items: list[int]) -> list[int]:
        raise ConnectionError("redis went away")

    coalescer: Coalescer[None, int, int] = Coalescer(send)
    results = await asyncio.gather(*(coalescer.submit(None, n) for n in range(3)), return_exceptions=True)

    assert [str(r) for r in results] == ["redis went away"] * 3


async def test_a_send_with_too_few_results_fails_its_callers_rather_than_leaving_them_waiting() -> None:
    async def send(group: None, items: list[int]) -> list[int]:
        return items[:-1]

    coalescer: Coalescer[None, int, int] = Coalescer(send)

    results = await asyncio.wait_for(
        asyncio.gather(*(coalescer.submit(None, n) for n in range(3)), return_exceptions=True), 5
    )

    assert [str(r) for r in results] == ["2 results for a batch of 3"] * 3
    assert all(isinstance(r, RuntimeError) for r in results)
