"""Durability: a poller killed between a page's payments and its cursor update resumes with no gap and no double;
several poller processes for one network never double-enqueue."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
import redis
import respx

from pollers.errors import LockLost
from pollers.record import PaymentSink
from pollers.utxo import UtxoPoller
from pollers.xrpl import XrplPoller
from service.networks import Network
from service.payments import Payment
from tests.pollers.conftest import BTC_ADDRESS, UtxoFactory, XrplFactory, cursor, job_ids, ripple_cursor, route_node
from tests.pollers.core_node import CoreNode, txid
from tests.pollers.rippled import Rippled, entry, tx_hash


class DyingSink:
    """Records through the real sink, then freezes after the ``die_after``-th payment until cancelled (killed)."""

    def __init__(self, sink: PaymentSink, die_after: int) -> None:
        self.sink = sink
        self.die_after = die_after
        self.recorded = 0
        self.dying = asyncio.Event()
        self.resume = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)

    async def record(self, payment: Payment) -> bool:
        new = await self.sink.record(payment)
        self.recorded += 1
        if self.recorded == self.die_after:
            self.dying.set()
            await self.resume.wait()
        return new


async def kill_during_poll(poller: UtxoPoller | XrplPoller, die_after: int) -> None:
    dying = DyingSink(poller.sink, die_after)
    poller.sink = dying  # type: ignore[assignment]
    task = asyncio.create_task(poller.poll_once())
    await asyncio.wait_for(dying.dying.wait(), timeout=10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def wait_for_lock(poller: UtxoPoller | XrplPoller) -> None:
    """The killed process never released its lock: the restarted one gets it once it expires."""
    async with asyncio.timeout(10):
        while not await poller.state.hold_lock():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("die_after", [1, 2, 3])
async def test_poll_bitcoin_killed_before_cursor_update_resumes_exactly_once(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, sync_redis: redis.Redis, die_after: int
) -> None:
    node = CoreNode()
    for n in (1, 2, 3):
        node.receive(txid(n), BTC_ADDRESS, f"0.{n}")
    node.mine(txid(1), txid(2), txid(3))
    route_node(mock_core, node)
    expected = [f"bitcoin:{txid(n)}:0" for n in (1, 2, 3)]

    await kill_during_poll(make_utxo_poller(Network.BITCOIN, lock_ttl_ms=200), die_after)
    assert job_ids(sync_redis, "bitcoin:incoming") == expected[:die_after]
    assert cursor(sync_redis, "bitcoin") is None

    restarted = make_utxo_poller(Network.BITCOIN, lock_ttl_ms=200)
    await wait_for_lock(restarted)
    await restarted.poll_once()

    assert job_ids(sync_redis, "bitcoin:incoming") == expected
    assert cursor(sync_redis, "bitcoin") == {"block": node.chain[-1], "height": node.tip}


async def test_poll_ripple_killed_between_pages_resumes_exactly_once(
    make_xrpl_poller: XrplFactory, sync_redis: redis.Redis
) -> None:
    server = Rippled(page_size=2)
    server.add(*(entry(tx_hash(n), 1969810 + n) for n in range(1, 6)))
    with respx.mock() as router:
        router.post("http://rippled.test:5005/").mock(side_effect=server.handle)
        await kill_during_poll(make_xrpl_poller(lock_ttl_ms=200), die_after=2)  # page 1 done, page 2 not
        assert len(job_ids(sync_redis, "ripple:incoming")) == 2
        assert ripple_cursor(sync_redis) is None

        restarted = make_xrpl_poller(lock_ttl_ms=200)
        await wait_for_lock(restarted)
        await restarted.poll_once()

    assert job_ids(sync_redis, "ripple:incoming") == [f"ripple:{tx_hash(n)}" for n in range(1, 6)]
    assert ripple_cursor(sync_redis) == {"ledger": server.validated}


async def test_poll_two_processes_one_network_enqueue_once(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, sync_redis: redis.Redis
) -> None:
    node = CoreNode()
    for n in range(1, 6):
        node.receive(txid(n), BTC_ADDRESS, "0.01", vout=n)
    node.mine(*(txid(n) for n in range(1, 6)))
    route_node(mock_core, node)
    first, second = make_utxo_poller(Network.BITCOIN), make_utxo_poller(Network.BITCOIN)

    results = await asyncio.gather(first.poll_once(), second.poll_once(), return_exceptions=True)

    assert sum(isinstance(r, LockLost) for r in results) == 1
    assert sorted(job_ids(sync_redis, "bitcoin:incoming")) == sorted(f"bitcoin:{txid(n)}:{n}" for n in range(1, 6))


async def test_poll_process_that_lost_its_lock_cannot_move_cursor(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, sync_redis: redis.Redis
) -> None:
    node = CoreNode()
    node.receive(txid(1), BTC_ADDRESS, "0.01")
    node.mine(txid(1))
    route_node(mock_core, node)
    slow, fast = make_utxo_poller(Network.BITCOIN), make_utxo_poller(Network.BITCOIN)
    dying = DyingSink(slow.sink, die_after=1)
    slow.sink = dying  # type: ignore[assignment]
    task = asyncio.create_task(slow.poll_once())
    await asyncio.wait_for(dying.dying.wait(), timeout=10)
    sync_redis.delete("resque:payq:poller:bitcoin:lock")  # as if its lock had expired mid-poll
    await fast.poll_once()
    node.mine()
    await fast.poll_once()
    settled = json.loads(sync_redis.get("resque:payq:cursor:bitcoin") or b"null")

    dying.resume.set()
    with pytest.raises(LockLost):
        await task

    assert json.loads(sync_redis.get("resque:payq:cursor:bitcoin") or b"null") == settled
    assert job_ids(sync_redis, "bitcoin:incoming") == [f"bitcoin:{txid(1)}:0"]
