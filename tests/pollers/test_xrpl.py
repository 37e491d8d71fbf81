"""The XRP Ledger poller: account_tx from a ledger cursor, paging, partial payments, errors, streaming."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis
import respx
from xrpl.asyncio.clients import AsyncJsonRpcClient

from pollers.cursor import PollerState
from pollers.errors import LedgerError, RpcUnavailable
from pollers.record import PaymentSink
from pollers.xrpl import XrplConfig, XrplPoller
from service.networks import Chain
from service.settings import Settings
from tests.pollers.conftest import FAST, XrplFactory, jobs, ripple_cursor
from tests.pollers.rippled import (
    FIXTURE_HASH,
    ISSUER,
    RPC_URL,
    SENDER,
    WATCHED,
    FakeStream,
    Rippled,
    entry,
    stream_message,
    tx_hash,
)
from workers.connection import Store


async def test_poll_ripple_first_run_reads_whole_history(
    rippled: Rippled, make_xrpl_poller: XrplFactory, sync_redis: redis.Redis
) -> None:
    rippled.add(entry())

    report = await make_xrpl_poller().poll_once()

    [call] = rippled.account_tx_calls()
    assert call["ledger_index_min"] == -1 and call["ledger_index_max"] == 1969900 and call["forward"] is True
    assert report.enqueued == 1
    [job] = jobs(sync_redis, "ripple:incoming")
    assert job["args"][0] | {"received_at": "-"} == {
        "id": f"ripple:{FIXTURE_HASH}", "network": "ripple", "tx_hash": FIXTURE_HASH, "address": WATCHED,
        "destination_tag": 42, "amount": "20.000000", "currency": "XRP", "minor_units": 20000000,
        "confirmations": 1, "source": "poller", "received_at": "-",
    }  # fmt: skip
    assert ripple_cursor(sync_redis) == {"ledger": 1969900}


async def test_poll_ripple_resumes_after_restart_from_next_ledger(
    rippled: Rippled, make_xrpl_poller: XrplFactory, sync_redis: redis.Redis
) -> None:
    rippled.add(entry(tx_hash(1), 1969850))
    first = make_xrpl_poller()
    await first.poll_once()
    await first.state.release_lock()
    rippled.validated = 1969950
    rippled.add(entry(tx_hash(2), 1969920))

    await make_xrpl_poller().poll_once()

    last = rippled.account_tx_calls()[-1]
    assert (last["ledger_index_min"], last["ledger_index_max"]) == (1969901, 1969950)
    assert [j["args"][0]["tx_hash"] for j in jobs(sync_redis, "ripple:incoming")] == [tx_hash(1), tx_hash(2)]
    assert ripple_cursor(sync_redis) == {"ledger": 1969950}


async def test_poll_ripple_nothing_new_leaves_cursor_and_skips_account_tx(
    rippled: Rippled, make_xrpl_poller: XrplFactory, sync_redis: redis.Redis
) -> None:
    sync_redis.set(f"resque:payq:cursor:ripple:{WATCHED}", json.dumps({"ledger": rippled.validated}))

    await make_xrpl_poller().poll_once()

    assert rippled.account_tx_calls() == []


async def test_poll_ripple_since_starts_at_that_ledger(rippled: Rippled, make_xrpl_poller: XrplFactory) -> None:
    await make_xrpl_poller(since=1969870).poll_once()

    assert rippled.account_tx_calls()[0]["ledger_index_min"] == 1969870


async def test_poll_ripple_follows_marker_pages_and_moves_cursor_after_the_last(
    rippled: Rippled, make_xrpl_poller: XrplFactory, sync_redis: redis.Redis
) -> None:
    rippled.page_size = 2
    rippled.add(*(entry(tx_hash(n), 1969810 + n) for n in range(1, 6)))

    await make_xrpl_poller().poll_once()

    calls = rippled.account_tx_calls()
    assert [c.get("marker") for c in calls] == [None, {"ledger": 1969812, "seq": 2}, {"ledger": 1969814, "seq": 4}]
    assert all(c["ledger_index_max"] == 1969900 for c in calls)
    assert [j["args"][0]["tx_hash"] for j in jobs(sync_redis, "ripple:incoming")] == [tx_hash(n) for n in range(1, 6)]


async def test_poll_ripple_credits_partial_payment_by_delivered_amount(
    rippled: Rippled, make_xrpl_poller: XrplFactory, sync_redis: redis.Redis
) -> None:
    # FIXTURE XRPL-PARTIAL-1: a tfPartialPayment asking 1000 USD that delivered 0.01.
    usd = {"currency": "USD", "issuer": ISSUER}
    rippled.add(entry(flags=131072, deliver_max={**usd, "value": "1000"}, delivered={**usd, "value": "0.01"}))

    await make_xrpl_poller().poll_once()

    [job] = jobs(sync_redis, "ripple:incoming")
    payment = job["args"][0]
    assert (payment["amount"], payment["currency"], payment["issuer"]) == ("0.01", "USD", ISSUER)
    assert "minor_units" not in payment


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"delivered": "unavailable"}, "delivered amount is unavailable"),
        ({"result": "tecPATH_DRY"}, "transaction result is tecPATH_DRY"),
        ({"kind": "OfferCreate"}, "transaction type OfferCreate is not a Payment"),
    ],
)
async def test_poll_ripple_rejects_uncreditable_transactions(
    rippled: Rippled,
    make_xrpl_poller: XrplFactory,
    sync_redis: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    changes: dict[str, Any],
    reason: str,
) -> None:
    rippled.add(entry(**changes))
    caplog.set_level(logging.INFO, logger="pollers")

    await make_xrpl_poller().poll_once()

    assert jobs(sync_redis, "ripple:incoming") == []
    assert reason in caplog.text
    assert ripple_cursor(sync_redis) == {"ledger": 1969900}


async def test_poll_ripple_passes_over_outgoing_payments(
    rippled: Rippled, make_xrpl_poller: XrplFactory, sync_redis: redis.Redis
) -> None:
    rippled.add(entry(account=WATCHED, destination=SENDER))

    await make_xrpl_poller().poll_once()

    assert jobs(sync_redis, "ripple:incoming") == []


async def test_poll_ripple_error_result_keeps_cursor(
    rippled: Rippled, make_xrpl_poller: XrplFactory, sync_redis: redis.Redis
) -> None:
    # FIXTURE XRPL-ERR-1's shape: HTTP 200, result.status "error".
    def fail(params: dict[str, Any]) -> httpx.Response:
        return httpx.Response(200, json={"result": {"error": "actMalformed", "request": params, "status": "error"}})

    rippled.override["account_tx"] = fail
    rippled.add(entry())

    with pytest.raises(LedgerError) as caught:
        await make_xrpl_poller().poll_once()

    assert caught.value.error == "actMalformed" and not caught.value.retryable
    assert len(rippled.account_tx_calls()) == 1
    assert ripple_cursor(sync_redis) is None


async def test_poll_ripple_retries_overloaded_server(
    rippled: Rippled, make_xrpl_poller: XrplFactory, sync_redis: redis.Redis
) -> None:
    overloaded = iter([httpx.Response(503, text="Server is overloaded"), httpx.Response(429, text="slow down")])
    rippled.override["account_tx"] = lambda params: next(overloaded, None)
    rippled.add(entry())

    await make_xrpl_poller().poll_once()

    assert len(rippled.account_tx_calls()) == 3
    assert len(jobs(sync_redis, "ripple:incoming")) == 1


async def test_poll_ripple_gives_up_after_bounded_retries(
    rippled: Rippled, make_xrpl_poller: XrplFactory, sync_redis: redis.Redis
) -> None:
    rippled.override["ledger"] = lambda params: httpx.Response(503, text="Server is overloaded")

    with pytest.raises(RpcUnavailable):
        await make_xrpl_poller().poll_once()

    assert len([m for m, _ in rippled.calls if m == "ledger"]) == FAST.attempts
    assert ripple_cursor(sync_redis) is None


async def test_poll_ripple_transient_error_result_is_retried(
    rippled: Rippled, make_xrpl_poller: XrplFactory, sync_redis: redis.Redis
) -> None:
    busy = iter([httpx.Response(200, json={"result": {"error": "tooBusy", "status": "error"}})])
    rippled.override["account_tx"] = lambda params: next(busy, None)
    rippled.add(entry())

    await make_xrpl_poller().poll_once()

    assert len(jobs(sync_redis, "ripple:incoming")) == 1


async def test_poll_ripple_connection_error_is_unavailable(store: Store, xrpl_settings: Settings) -> None:
    with respx.mock() as router:
        router.post(RPC_URL).mock(side_effect=httpx.ConnectError("refused"))
        poller = XrplPoller(
            XrplConfig(Chain.MAIN, frozenset({WATCHED})),
            AsyncJsonRpcClient(RPC_URL),
            PollerState(store, "ripple"),
            PaymentSink(store, xrpl_settings, "ripple"),
            backoff=FAST,
        )
        with pytest.raises(RpcUnavailable):
            await poller.poll_once()


async def test_stream_backfills_on_every_connect_and_credits_pushed_transactions(
    make_xrpl_poller: XrplFactory, sync_redis: redis.Redis
) -> None:
    """The stream logic against fake connections; xrpl-py's real WebSocket client is not exercised here."""
    server = Rippled(validated=1969900)
    server.add(entry(tx_hash(1), 1969850))  # before the first connection
    stop = asyncio.Event()
    pushed = entry(tx_hash(2), 1969901)
    missed = entry(tx_hash(3), 1969902)
    connections: list[FakeStream] = []

    def first_closes() -> None:
        # The connection drops; meanwhile two ledgers validate, one payment the stream never sent.
        server.validated = 1969902
        server.add(pushed, missed)

    def connect() -> FakeStream:
        if not connections:
            connection = FakeStream(server, [{"type": "response", "id": 1}, stream_message(pushed)], first_closes)
        else:
            connection = FakeStream(server, [stream_message(pushed)], stop.set)
        connections.append(connection)
        return connection

    await asyncio.wait_for(make_xrpl_poller().stream(connect, stop, interval_s=30.0), timeout=10)

    assert len(connections) == 2
    assert all(c.subscribed() == [WATCHED] for c in connections)
    assert [b.ledger_index_min for c in connections for b in c.backfills()] == [-1, 1969901]
    assert [j["args"][0]["tx_hash"] for j in jobs(sync_redis, "ripple:incoming")] == [tx_hash(n) for n in (1, 2, 3)]
    assert ripple_cursor(sync_redis) == {"ledger": 1969902}


async def test_stream_backfills_again_when_quiet(make_xrpl_poller: XrplFactory, sync_redis: redis.Redis) -> None:
    server = Rippled(validated=1969900)
    stop = asyncio.Event()
    release = asyncio.Event()

    class QuietStream(FakeStream):
        async def _messages(self) -> AsyncIterator[dict[str, Any]]:
            await release.wait()
            yield {"type": "ledgerClosed"}

    connection = QuietStream(server, [], stop.set)

    async def watch() -> None:
        # Once the connect-time backfill has run, a payment validates that the stream does not push.
        while not connection.backfills():
            await asyncio.sleep(0.01)
        server.validated = 1969905
        server.add(entry(tx_hash(9), 1969904))
        while not jobs(sync_redis, "ripple:incoming"):
            await asyncio.sleep(0.01)
        stop.set()

    await asyncio.wait_for(
        asyncio.gather(make_xrpl_poller().stream(lambda: connection, stop, interval_s=0.05), watch()), timeout=10
    )
    release.set()

    assert [j["args"][0]["tx_hash"] for j in jobs(sync_redis, "ripple:incoming")] == [tx_hash(9)]
    assert connection.ledger_requests() >= 2
