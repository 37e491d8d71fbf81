"""The shared enqueue path: webhooks and pollers reporting the same payments make one job each; reversals."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import redis
import respx

from pollers.record import PaymentSink
from service.app import create_app
from service.networks import Network
from service.payments import utxo_payment
from service.settings import Settings
from tests.pollers.conftest import BTC_ADDRESS, UtxoFactory, job_ids, jobs, route_node
from tests.pollers.core_node import CoreNode, txid
from workers.connection import Store


async def test_record_intake_and_poller_reporting_concurrently_make_one_job_each(
    mock_core: respx.MockRouter,
    make_utxo_poller: UtxoFactory,
    store: Store,
    settings: Settings,
    sync_redis: redis.Redis,
) -> None:
    node = CoreNode()
    outputs = range(1, 9)
    for n in outputs:
        node.receive(txid(n), BTC_ADDRESS, f"0.0{n}", vout=n)
    node.mine(*(txid(n) for n in outputs))
    route_node(mock_core, node)
    mock_core.route(host="payq.test").pass_through()
    app = create_app(settings.model_copy(update={"dev_mode": True}), store)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://payq.test") as client:

        async def webhook(n: int) -> int:
            body = {"txid": txid(n), "output_index": n, "address": BTC_ADDRESS, "amount": f"0.0{n}", "confirmations": 1}
            response = await client.post("/payments/bitcoin", json=body)
            return response.status_code

        poller = make_utxo_poller(Network.BITCOIN)
        results = await asyncio.gather(poller.poll_once(), *(webhook(n) for n in outputs), poller.poll_once())

    assert results[1:-1] == [202] * len(outputs)
    assert sorted(job_ids(sync_redis, "bitcoin:incoming")) == sorted(f"bitcoin:{txid(n)}:{n}" for n in outputs)
    sources = {job["args"][0]["source"] for job in jobs(sync_redis, "bitcoin:incoming")}
    assert sources <= {"webhook", "poller"}


async def test_record_reversal_needs_an_enqueued_payment_and_happens_once(
    store: Store, settings: Settings, sync_redis: redis.Redis
) -> None:
    sink = PaymentSink(store, settings.model_copy(update={"bitcoin_reversal_job_class": "Undo"}), "bitcoin")
    payment = utxo_payment(
        Network.BITCOIN, txid=txid(1), output_index=0, address=BTC_ADDRESS, amount=Decimal("0.1"),
        confirmations=1, source="poller", received_at=datetime(2026, 1, 2, tzinfo=UTC),
    )  # fmt: skip

    assert await sink.reverse(payment) is False
    assert await sink.record(payment) is True
    assert await sink.record(payment) is False
    assert await sink.reverse(payment) is True
    assert await sink.reverse(payment) is False

    [raw] = sync_redis.lrange("resque:queue:bitcoin:reversed", 0, -1)
    assert json.loads(raw) == {"class": "Undo", "queue": "bitcoin:reversed", "args": [payment.to_job_arg()]}
    assert b'"amount":"0.10000000"' in raw
