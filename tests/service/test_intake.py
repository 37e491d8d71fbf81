"""POST /payments/<network>: each network and body shape, from the request to the job bytes in Redis."""

from __future__ import annotations

import logging
import re

import httpx
import orjson
import pytest
import redis
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from service.app import create_app
from service.intake import is_intake_request
from service.settings import Settings
from tests.service import fixtures
from tests.service.intake_client import (
    DOGE_ADDRESS,
    SECRET,
    TAPROOT,
    TOKEN,
    TXID,
    intake_client,
    intake_settings,
    post_signed,
    signed_headers,
    utxo_body,
)
from workers.codec import decode_job, encode_job
from workers.connection import Store


def queued(sync_redis: redis.Redis, queue: str) -> list[dict[str, object]]:
    """The payments in ``queue``, in order, checked to be single-argument jobs."""
    payments = []
    for raw in sync_redis.lrange(f"resque:queue:{queue}", 0, -1):
        job = decode_job(raw)
        assert job.queue == queue and len(job.args) == 1
        assert isinstance(job.args[0], dict)
        payments.append(job.args[0])
    return payments


async def test_post_payments_enqueues_payq_bitcoin_payment_as_one_job(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url)
    async with intake_client(settings, store) as client:
        response = await post_signed(client, "bitcoin", orjson.dumps(utxo_body()))

    assert response.status_code == 202
    answer = response.json()
    request_id = response.headers["x-request-id"]
    payment_id = f"bitcoin:{TXID}:1"
    assert answer == {
        "request_id": request_id,
        "network": "bitcoin",
        "queue": "bitcoin:incoming",
        "delivery": "new",
        "payments": [{"id": payment_id, "status": "enqueued", "confirmations": 1, "queue": "bitcoin:incoming"}],
    }
    [raw] = sync_redis.lrange("resque:queue:bitcoin:incoming", 0, -1)
    job = decode_job(raw)
    payment = job.args[0]
    assert isinstance(payment, dict)
    assert raw == encode_job("bitcoin:incoming", "log", [payment])
    assert payment["id"] == payment_id and payment["amount"] == "0.00150000" and payment["minor_units"] == 150000
    assert payment["source"] == "webhook" and payment["request_id"] == request_id
    assert sync_redis.sismember("resque:queues", "bitcoin:incoming")


async def test_post_payments_uses_configured_job_class(store: Store, sync_redis: redis.Redis, redis_url: str) -> None:
    settings = intake_settings(redis_url, bitcoin_job_class="CreditPayment")
    async with intake_client(settings, store) as client:
        response = await post_signed(client, "bitcoin", orjson.dumps(utxo_body()))

    assert response.status_code == 202
    [raw] = sync_redis.lrange("resque:queue:bitcoin:incoming", 0, -1)
    assert decode_job(raw).class_name == "CreditPayment"


async def test_post_payments_holds_dogecoin_payment_until_six_confirmations(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url)
    body = utxo_body(address=DOGE_ADDRESS, amount="250", confirmations=5)
    async with intake_client(settings, store) as client:
        early = await post_signed(client, "dogecoin", orjson.dumps(body))
        assert queued(sync_redis, "dogecoin:incoming") == []
        later = await post_signed(client, "dogecoin", orjson.dumps({**body, "confirmations": 6}))
        again = await post_signed(client, "dogecoin", orjson.dumps({**body, "confirmations": 7}))

    assert early.status_code == later.status_code == again.status_code == 202
    [first] = early.json()["payments"]
    assert (first["status"], first["confirmations"], first["reason"]) == ("pending", 5, "5 of 6 confirmations")
    assert later.json()["payments"][0]["status"] == "enqueued"
    assert again.json()["payments"][0]["status"] == "duplicate"
    [payment] = queued(sync_redis, "dogecoin:incoming")
    assert (payment["amount"], payment["currency"], payment["confirmations"]) == ("250.00000000", "DOGE", 6)


async def test_post_payments_accepts_payment_arrays_and_payments_object(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url)
    second = utxo_body(output_index=2, amount="1")
    async with intake_client(settings, store) as client:
        listed = await post_signed(client, "bitcoin", orjson.dumps([utxo_body(), second]))
        wrapped = await post_signed(client, "bitcoin", orjson.dumps({"payments": [utxo_body(output_index=3)]}))

    assert [p["status"] for p in listed.json()["payments"]] == ["enqueued", "enqueued"]
    assert [p["status"] for p in wrapped.json()["payments"]] == ["enqueued"]
    assert [p["output_index"] for p in queued(sync_redis, "bitcoin:incoming")] == [1, 2, 3]


# --- BlockCypher ---------------------------------------------------------------------------------------


async def test_post_payments_enqueues_blockcypher_output_paying_watched_address(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url, bitcoin_addresses=fixtures.BCY_FIRST_ADDRESS)
    body = fixtures.blockcypher_tx(confirmations=1, block_height=2_450_000)
    async with intake_client(settings, store) as client:
        response = await client.post(f"/payments/bitcoin?token={TOKEN}", content=body)

    assert response.status_code == 202
    assert response.json()["payments"] == [
        {
            "id": f"bitcoin:{fixtures.BCY_TXID}:0",
            "status": "enqueued",
            "confirmations": 1,
            "queue": "bitcoin:incoming",
        }
    ]
    [payment] = queued(sync_redis, "bitcoin:incoming")
    assert payment["address"] == fixtures.BCY_FIRST_ADDRESS
    assert (payment["amount"], payment["minor_units"]) == ("0.00100000", fixtures.BCY_FIRST_VALUE)


async def test_post_payments_enqueues_blockcypher_tx_once_across_confirmation_events(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url, bitcoin_addresses=fixtures.BCY_FIRST_ADDRESS)
    async with intake_client(settings, store) as client:
        unconfirmed = await client.post(f"/payments/bitcoin?token={TOKEN}", content=fixtures.blockcypher_tx())
        assert queued(sync_redis, "bitcoin:incoming") == []
        statuses = []
        for confirmations in (1, 2, 3):
            body = fixtures.blockcypher_tx(confirmations=confirmations, block_height=2_450_000)
            response = await client.post(f"/payments/bitcoin?token={TOKEN}", content=body)
            statuses.append(response.json()["payments"][0]["status"])

    assert unconfirmed.status_code == 202
    assert unconfirmed.json()["payments"][0]["status"] == "pending"
    assert statuses == ["enqueued", "duplicate", "duplicate"]
    assert len(queued(sync_redis, "bitcoin:incoming")) == 1


async def test_post_payments_ignores_blockcypher_tx_paying_nobody_watched(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url, bitcoin_addresses="mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef")
    body = fixtures.blockcypher_tx(confirmations=3, block_height=2_450_000)
    async with intake_client(settings, store) as client:
        response = await client.post(f"/payments/bitcoin?token={TOKEN}", content=body)

    assert response.status_code == 202
    [outcome] = response.json()["payments"]
    assert outcome["status"] == "ignored" and outcome["id"] == f"bitcoin:{fixtures.BCY_TXID}"
    assert not sync_redis.exists("resque:queue:bitcoin:incoming")


async def test_post_payments_holds_blockcypher_double_spend(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url, bitcoin_addresses=fixtures.BCY_FIRST_ADDRESS)
    body = fixtures.blockcypher_tx(confirmations=2, block_height=2_450_000, double_spend=True)
    async with intake_client(settings, store) as client:
        response = await client.post(f"/payments/bitcoin?token={TOKEN}", content=body)

    assert [p["status"] for p in response.json()["payments"]] == ["pending"]
    assert not sync_redis.exists("resque:queue:bitcoin:incoming")


# --- XRP Ledger ----------------------------------------------------------------------------------------


async def test_post_payments_enqueues_xrpl_stream_message(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url, ripple_addresses=fixtures.XRPL_ACCOUNT)
    async with intake_client(settings, store) as client:
        response = await post_signed(client, "ripple", fixtures.XRPL_STREAM_1)

    assert response.status_code == 202
    assert response.json()["payments"][0] == {
        "id": f"ripple:{fixtures.XRPL_HASH}",
        "status": "enqueued",
        "confirmations": 1,
        "queue": "ripple:incoming",
    }
    [payment] = queued(sync_redis, "ripple:incoming")
    assert (payment["amount"], payment["minor_units"], payment["currency"]) == ("20.000000", 20_000_000, "XRP")
    assert payment["tx_hash"] == fixtures.XRPL_HASH and "destination_tag" not in payment


@pytest.mark.parametrize("api_v1", [False, True])
async def test_post_payments_enqueues_xrpl_account_tx_entry(
    store: Store, sync_redis: redis.Redis, redis_url: str, api_v1: bool
) -> None:
    settings = intake_settings(redis_url)
    async with intake_client(settings, store) as client:
        response = await post_signed(client, "ripple", fixtures.xrpl_acctx_entry(api_v1=api_v1))

    assert response.json()["payments"][0]["status"] == "enqueued"
    [payment] = queued(sync_redis, "ripple:incoming")
    assert (payment["address"], payment["destination_tag"]) == (fixtures.XRPL_ACCOUNT, 42)


async def test_post_payments_credits_partial_payment_with_delivered_amount_only(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url)
    async with intake_client(settings, store) as client:
        response = await post_signed(client, "ripple", fixtures.xrpl_partial_payment())

    assert response.json()["payments"][0]["status"] == "enqueued"
    [payment] = queued(sync_redis, "ripple:incoming")
    assert (payment["amount"], payment["currency"], payment["issuer"]) == ("0.01", "USD", fixtures.USD_ISSUER)
    assert "minor_units" not in payment and payment["destination_tag"] == 7


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (fixtures.xrpl_partial_payment(validated=False), "pending", "not yet in a validated ledger"),
        (fixtures.xrpl_partial_payment(result="tecPATH_PARTIAL"), "rejected", "transaction result is tecPATH_PARTIAL"),
        (fixtures.xrpl_partial_payment(delivered="unavailable"), "rejected", "delivered amount is unavailable"),
        (fixtures.xrpl_partial_payment(transaction_type="EscrowFinish"), "rejected", "is not a Payment"),
    ],
    ids=["unvalidated", "tec", "unavailable", "not-a-payment"],
)
async def test_post_payments_acknowledges_xrpl_transactions_it_will_not_credit_yet(
    store: Store, sync_redis: redis.Redis, redis_url: str, body: bytes, status: str, reason: str
) -> None:
    settings = intake_settings(redis_url)
    async with intake_client(settings, store) as client:
        response = await post_signed(client, "ripple", body)

    assert response.status_code == 202
    [outcome] = response.json()["payments"]
    assert outcome["status"] == status and reason in outcome["reason"]
    assert outcome["id"] == f"ripple:{fixtures.PARTIAL_HASH}"
    assert not sync_redis.exists("resque:queue:ripple:incoming")


async def test_post_payments_enqueues_xrpl_payment_once_from_stream_and_account_tx(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url)
    async with intake_client(settings, store) as client:
        stream = await post_signed(client, "ripple", fixtures.XRPL_STREAM_1)
        polled = await post_signed(client, "ripple", fixtures.xrpl_acctx_entry())

    assert stream.json()["payments"][0]["status"] == "enqueued"
    assert polled.json()["payments"][0]["status"] == "duplicate"
    assert len(queued(sync_redis, "ripple:incoming")) == 1


# --- addresses and amounts -----------------------------------------------------------------------------


async def test_post_payments_accepts_bech32m_taproot_address(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url, bitcoin_chain="main")
    async with intake_client(settings, store) as client:
        response = await post_signed(client, "bitcoin", orjson.dumps(utxo_body(address=TAPROOT.upper())))

    assert response.status_code == 202
    assert queued(sync_redis, "bitcoin:incoming")[0]["address"] == TAPROOT


@pytest.mark.parametrize(
    ("network", "changes", "field"),
    [
        ("bitcoin", {"address": DOGE_ADDRESS}, "address"),
        ("dogecoin", {"address": "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"}, "address"),
        ("bitcoin", {"address": TAPROOT}, "address"),
        ("bitcoin", {"address": "tb1pqqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0swtnwf5"}, "address"),
        ("bitcoin", {"amount": 0.0015}, "amount"),
        ("bitcoin", {"amount": "1e-3"}, "amount"),
        ("bitcoin", {"amount": "0.000000001"}, "amount"),
        ("bitcoin", {"confirmations": -1}, "confirmations"),
        ("bitcoin", {"txid": "xyz"}, "txid"),
        ("bitcoin", {"surprise": 1}, "surprise"),
    ],
    ids=[
        "btc-gets-doge",
        "doge-gets-segwit",
        "mainnet-on-testnet",
        "bech32m-bad-checksum",
        "float",
        "exponent",
        "too-precise",
        "negative",
        "txid",
        "extra",
    ],
)
async def test_post_payments_refuses_invalid_payment_naming_field(
    store: Store, sync_redis: redis.Redis, redis_url: str, network: str, changes: dict[str, object], field: str
) -> None:
    settings = intake_settings(redis_url)
    async with intake_client(settings, store) as client:
        response = await post_signed(client, network, orjson.dumps(utxo_body(**changes)))

    assert response.status_code == 422
    answer = response.json()
    assert answer["error"] == "invalid_payment" and answer["field"] == field
    assert answer["request_id"] == response.headers["x-request-id"]
    assert sync_redis.keys("*") == []


async def test_post_payments_refuses_float_in_blockcypher_value(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url, bitcoin_addresses=fixtures.BCY_CHANGE_ADDRESS)
    body = fixtures.blockcypher_tx(confirmations=1, block_height=7, change_value=6.2478)
    async with intake_client(settings, store) as client:
        response = await post_signed(client, "bitcoin", body)

    assert response.status_code == 422
    assert response.json()["field"] == "outputs[1].value"
    assert not sync_redis.exists("resque:queue:bitcoin:incoming")


async def test_post_payments_answers_404_for_unknown_network(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url)
    async with intake_client(settings, store) as client:
        response = await post_signed(client, "litecoin", orjson.dumps(utxo_body()))

    assert response.status_code == 404
    assert response.json()["error"] == "unknown_network"
    assert sync_redis.keys("*") == []


# --- request ids and the outcome line ------------------------------------------------------------------


async def test_post_payments_carries_given_request_id_into_job_and_log(
    store: Store, sync_redis: redis.Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = intake_settings(redis_url)
    caplog.set_level(logging.INFO)
    async with intake_client(settings, store) as client:
        response = await client.post(
            f"/payments/bitcoin?token={TOKEN}",
            content=orjson.dumps(utxo_body()),
            headers={"X-Request-Id": "explorer-req-0042"},
        )

    assert response.headers["x-request-id"] == "explorer-req-0042"
    assert queued(sync_redis, "bitcoin:incoming")[0]["request_id"] == "explorer-req-0042"
    [line] = [r.getMessage() for r in caplog.records if r.name == "service.intake"]
    assert re.fullmatch(
        r"webhook accepted request_id=explorer-req-0042 network=bitcoin status=202 client=127\.0\.0\.1:123 "
        rf"ms=\d+\.\d auth=token webhook_id=None enqueued=1 duplicate=0 pending=0 rejected=0 ignored=0 "
        rf"enqueued_ids=bitcoin:{TXID}:1",
        line,
    )


@pytest.mark.parametrize("given", ["", "has space", "x" * 200, "bad\u00e9id", "../../etc"])
async def test_post_payments_replaces_insane_request_id(
    store: Store, sync_redis: redis.Redis, redis_url: str, given: str
) -> None:
    settings = intake_settings(redis_url)
    async with intake_client(settings, store) as client:
        response = await client.post(
            f"/payments/bitcoin?token={TOKEN}",
            content=orjson.dumps(utxo_body()),
            headers={"X-Request-Id": given.encode("utf-8")},  # type: ignore[dict-item]
        )

    assert response.status_code == 202
    request_id = response.headers["x-request-id"]
    assert request_id != given and len(request_id) == 32 and request_id.isalnum()
    assert queued(sync_redis, "bitcoin:incoming")[0]["request_id"] == request_id


async def test_post_payments_never_logs_secrets(
    store: Store, sync_redis: redis.Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = intake_settings(redis_url)
    caplog.set_level(logging.DEBUG)
    async with intake_client(settings, store) as client:
        await client.post(f"/payments/bitcoin?token={TOKEN}", content=orjson.dumps(utxo_body()))
        await client.post(f"/payments/bitcoin?token={TOKEN}x", content=orjson.dumps(utxo_body()))
        await post_signed(client, "bitcoin", orjson.dumps(utxo_body(output_index=5)))
        await client.post("/payments/bitcoin", content=b"{}")

    # Only payq's own lines: the test's HTTP client logs the URLs it calls, token included.
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("service", "workers")))
    assert "webhook refused" in text and "webhook accepted" in text
    assert TOKEN not in text and SECRET not in text and SECRET.removeprefix("whsec_") not in text


def test_intake_settings_are_valid_settings() -> None:
    assert isinstance(intake_settings("redis://127.0.0.1:1/0"), Settings)


async def test_post_payments_counts_outcomes_in_metrics(store: Store, redis_url: str) -> None:
    settings = intake_settings(redis_url)
    async with intake_client(settings, store) as client:
        await post_signed(client, "bitcoin", orjson.dumps(utxo_body()))
        await client.post("/payments/bitcoin", content=b"{}")
        await client.post(f"/payments/ripple?token={TOKEN}", content=b"[]")
        metrics = (await client.get("/metrics")).text

    assert 'payq_webhook_requests_total{network="bitcoin",outcome="accepted"} 1.0' in metrics
    assert 'payq_webhook_requests_total{network="bitcoin",outcome="unauthorized"} 1.0' in metrics
    assert 'payq_webhook_requests_total{network="ripple",outcome="invalid"} 1.0' in metrics
    assert "payq_enqueue_latency_seconds_count 1.0" in metrics


async def test_post_payments_answers_500_only_for_a_bug_and_logs_it(
    store: Store, redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in payq")

    monkeypatch.setattr("service.intake.parse_body", broken)
    async with intake_client(intake_settings(redis_url), store) as client:
        response = await client.post(f"/payments/bitcoin?token={TOKEN}", content=orjson.dumps(utxo_body()))

    assert response.status_code == 500
    assert response.json()["error"] == "internal" and "bug" not in response.text
    [record] = [r for r in caplog.records if r.getMessage().startswith("webhook failed")]
    assert record.exc_info is not None and record.levelno == logging.ERROR


async def test_fast_path_answers_as_the_fastapi_route_does(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    app = create_app(intake_settings(redis_url), store)

    async def through_framework(scope: Scope, receive: Receive, send: Send) -> None:
        await FastAPI.__call__(app, scope, receive, send)  # skip PayqApp's shortcut to the intake

    answers = []
    for transport, output_index in ((httpx.ASGITransport(app), 1), (httpx.ASGITransport(through_framework), 2)):
        async with httpx.AsyncClient(transport=transport, base_url="http://payq.test") as client:
            body = orjson.dumps(utxo_body(output_index=output_index))
            headers = {**signed_headers(body), "X-Request-Id": f"req-{output_index}"}
            accepted = await client.post("/payments/bitcoin", content=body, headers=headers)
            refused = await client.post("/payments/bitcoin", content=body, headers={"X-Request-Id": "req-0"})
            unknown = await client.post(
                f"/payments/litecoin?token={TOKEN}", content=body, headers={"X-Request-Id": "r"}
            )
        answers.append([(r.status_code, r.headers["content-type"], r.json()) for r in (accepted, refused, unknown)])
        assert accepted.headers["x-request-id"] == f"req-{output_index}"

    fast, routed = answers
    assert [status for status, _, _ in fast] == [202, 401, 404]
    assert fast[1:] == routed[1:]
    assert fast[0][2] == {**routed[0][2], "request_id": "req-1", "payments": fast[0][2]["payments"]}
    assert [p["id"] for p in (fast[0][2]["payments"][0], routed[0][2]["payments"][0])] == [
        f"bitcoin:{TXID}:1",
        f"bitcoin:{TXID}:2",
    ]
    assert len(queued(sync_redis, "bitcoin:incoming")) == 2


@pytest.mark.parametrize(
    ("method", "path", "root_path", "intake"),
    [
        ("POST", "/payments/bitcoin", "", True),
        ("POST", "/payments/no-such-network", "", True),  # answered 404 by the intake itself
        ("POST", "/payq/payments/ripple", "/payq", True),
        ("GET", "/payments/bitcoin", "", False),
        ("POST", "/payments/bitcoin/", "", False),
        ("POST", "/payments/", "", False),
        ("POST", "/payments/bitcoin/extra", "", False),
        ("POST", "/queues/bitcoin", "", False),
    ],
)
def test_intake_requests_are_told_apart_from_the_rest(method: str, path: str, root_path: str, intake: bool) -> None:
    scope = {"type": "http", "method": method, "path": path, "root_path": root_path}

    assert is_intake_request(scope) is intake
