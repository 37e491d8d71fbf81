"""The body cap, and the promise that no input whatsoever gets a 500."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator

import orjson
import pytest
import redis

from tests.service import fixtures
from tests.service.intake_client import TOKEN, intake_client, intake_settings, post_signed, utxo_body
from workers.connection import Store

CAP = 2048


async def chunks(body: bytes, size: int = 300) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def padded(size: int) -> bytes:
    """A valid payment body of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    body = orjson.dumps(utxo_body())
    return body + b" " * (size - len(body))


async def test_post_payments_refuses_declared_oversize_body(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    async with intake_client(intake_settings(redis_url, max_body_bytes=CAP), store) as client:
        response = await post_signed(client, "bitcoin", padded(CAP + 1))

    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert sync_redis.keys("*") == []


async def test_post_payments_refuses_streamed_oversize_body(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    async with intake_client(intake_settings(redis_url, max_body_bytes=CAP), store) as client:
        response = await client.post(f"/payments/bitcoin?token={TOKEN}", content=chunks(padded(CAP * 4)))

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert sync_redis.keys("*") == []


async def test_post_payments_accepts_body_at_cap(store: Store, sync_redis: redis.Redis, redis_url: str) -> None:
    async with intake_client(intake_settings(redis_url, max_body_bytes=CAP), store) as client:
        declared = await post_signed(client, "bitcoin", padded(CAP))
        streamed = await client.post(f"/payments/bitcoin?token={TOKEN}", content=chunks(padded(CAP)))

    assert declared.status_code == streamed.status_code == 202
    assert [p["status"] for p in (*declared.json()["payments"], *streamed.json()["payments"])] == [
        "enqueued",
        "duplicate",
    ]


async def test_post_payments_refuses_malformed_content_length(store: Store, redis_url: str) -> None:
    async with intake_client(intake_settings(redis_url), store) as client:
        response = await client.post(
            f"/payments/bitcoin?token={TOKEN}", content=b"{}", headers={"content-length": "2x"}
        )

    assert response.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b'{"txid": "\xed\xa0\x80"}',
        b"[" * 5000 + b"]" * 5000,
        b"null",
        b"42",
        b'"payment"',
        b"[]",
        b"{}",
        b'{"payments": 3}',
        b'{"payments": []}',
        b'{"payments": [1], "x": 2}',
        b"[" + b",".join([orjson.dumps(utxo_body())] * 1001) + b"]",
        b'{"amount": NaN}',
        b'{"txid": 1e400}',
        b'{"output_index": 123456789012345678901234567890}',
        b'{"outputs": "many", "hash": "' + b"a" * 64 + b'"}',
        b'{"tx_json": "Payment"}',
        b'{"tx_json": {"TransactionType": "Payment"}, "hash": 7}',
        b'{"amount": {"currency": "USD"}}',
    ],
)
@pytest.mark.parametrize("network", ["bitcoin", "dogecoin", "ripple"])
async def test_post_payments_answers_malformed_body_with_422(
    store: Store, sync_redis: redis.Redis, redis_url: str, network: str, body: bytes
) -> None:
    async with intake_client(intake_settings(redis_url, max_body_bytes=1_000_000), store) as client:
        response = await client.post(f"/payments/{network}?token={TOKEN}", content=body)

    assert response.status_code == 422, response.text
    assert response.json()["field"]
    assert sync_redis.keys("*") == []


_ODD_VALUES: list[object] = [None, "", "x", -1, 0, 1.5, 2**70, [], {}, True, "1e400", "\u0000", "9" * 80, {"a": []}]


def _mutate(document: object, rng: random.Random) -> object:
    """Replace or delete one value somewhere in ``document``."""
    if isinstance(document, dict) and document:
        key = rng.choice(sorted(document))
        copy = dict(document)
        roll = rng.random()
        if roll < 0.2:
            del copy[key]
        elif roll < 0.6:
            copy[key] = rng.choice(_ODD_VALUES)
        else:
            copy[key] = _mutate(copy[key], rng)
        return copy
    if isinstance(document, list) and document:
        index = rng.randrange(len(document))
        copy_list = list(document)
        copy_list[index] = _mutate(copy_list[index], rng) if rng.random() < 0.5 else rng.choice(_ODD_VALUES)
        return copy_list
    return rng.choice(_ODD_VALUES)


async def test_post_payments_never_answers_500_to_mutated_documented_payloads(
    store: Store, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(20261203)
    seeds = {
        "bitcoin": [orjson.dumps(utxo_body()), fixtures.blockcypher_tx(confirmations=2, block_height=7)],
        "dogecoin": [orjson.dumps(utxo_body(address="DH9fPpKHLiP5eaAD3pXxxUZmPktGNGTFp6", confirmations=6))],
        "ripple": [fixtures.XRPL_STREAM_1, fixtures.xrpl_acctx_entry(), fixtures.xrpl_partial_payment()],
    }
    statuses: dict[int, int] = {}
    async with intake_client(intake_settings(redis_url), store) as client:
        for network, bodies in seeds.items():
            for body in bodies:
                document = orjson.loads(body)
                for _ in range(60):
                    mutated = json.dumps(_mutate(_mutate(document, rng), rng)).encode()
                    response = await client.post(f"/payments/{network}?token={TOKEN}", content=mutated)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    assert response.status_code in (202, 422), (network, mutated, response.text)

    assert statuses[422] > 50 and statuses[202] > 10  # the mutations reached both outcomes
    assert not [r for r in caplog.records if r.getMessage().startswith("webhook failed")]
