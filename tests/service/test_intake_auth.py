"""Who may post payments: Standard Webhooks signatures, URL tokens, development mode; and delivery replays."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import redis
from standardwebhooks.webhooks import Webhook

from service.redis_server import RedisServer
from tests.service.intake_client import (
    OLD_SECRET,
    SECRET,
    TOKEN,
    TXID,
    intake_client,
    intake_settings,
    post_signed,
    signed_headers,
    utxo_body,
)
from workers.connection import Store

BODY = orjson.dumps(utxo_body())


def queue_length(sync_redis: redis.Redis) -> int:
    return int(sync_redis.llen("resque:queue:bitcoin:incoming"))


async def test_post_payments_accepts_delivery_signed_by_standardwebhooks_library(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    sender = Webhook(SECRET)
    now = datetime.now(UTC)
    body = orjson.dumps(utxo_body()).decode()
    headers = {
        "webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sender.sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, body),
        "content-type": "application/json",
    }
    async with intake_client(intake_settings(redis_url), store) as client:
        response = await client.post("/payments/bitcoin", content=body.encode(), headers=headers)

    assert response.status_code == 202
    assert response.json()["payments"][0]["status"] == "enqueued"
    assert queue_length(sync_redis) == 1


async def test_post_payments_accepts_any_rotated_secret(store: Store, sync_redis: redis.Redis, redis_url: str) -> None:
    settings = intake_settings(redis_url, webhook_secrets=f"{SECRET},{OLD_SECRET}")
    async with intake_client(settings, store) as client:
        response = await post_signed(client, "bitcoin", BODY, secret=OLD_SECRET)

    assert response.status_code == 202
    assert queue_length(sync_redis) == 1


def _unverified(case: str) -> dict[str, str]:
    """Headers that must not verify, built when the test runs so the timestamps are current."""
    now = int(time.time())
    good = signed_headers(BODY, timestamp=now)
    cases: dict[str, dict[str, str]] = {
        "stale": signed_headers(BODY, timestamp=now - 360),
        "future": signed_headers(BODY, timestamp=now + 360),
        "wrong-secret": signed_headers(BODY, secret=OLD_SECRET),
        "other-body": signed_headers(BODY + b" "),
        "garbage": {**good, "webhook-signature": "garbage"},
        "bad-base64": {**good, "webhook-signature": "v1,!!!"},
        "bad-timestamp": {**good, "webhook-timestamp": "not-a-number"},
        "no-id": {k: v for k, v in good.items() if k != "webhook-id"},
        "dotted-id": signed_headers(BODY, msg_id="msg.1"),
        "unsigned": {},
    }
    return cases[case]


@pytest.mark.parametrize(
    "case",
    [
        "stale",
        "future",
        "wrong-secret",
        "other-body",
        "garbage",
        "bad-base64",
        "bad-timestamp",
        "no-id",
        "dotted-id",
        "unsigned",
    ],
)
async def test_post_payments_refuses_unverified_delivery(
    store: Store, sync_redis: redis.Redis, redis_url: str, case: str
) -> None:
    async with intake_client(intake_settings(redis_url, webhook_tokens=""), store) as client:
        response = await client.post("/payments/bitcoin", content=BODY, headers=_unverified(case))

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert sync_redis.keys("*") == []


async def test_post_payments_refuses_signature_when_no_secret_is_configured(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    async with intake_client(intake_settings(redis_url, webhook_secrets=""), store) as client:
        response = await post_signed(client, "bitcoin", BODY)

    assert response.status_code == 401
    assert sync_redis.keys("*") == []


@pytest.mark.parametrize(("token", "status"), [(TOKEN, 202), (TOKEN + "x", 401), ("", 401), (TOKEN[:-1], 401)])
async def test_post_payments_checks_url_token(
    store: Store, sync_redis: redis.Redis, redis_url: str, token: str, status: int
) -> None:
    async with intake_client(intake_settings(redis_url), store) as client:
        response = await client.post("/payments/bitcoin", params={"token": token}, content=BODY)

    assert response.status_code == status
    assert queue_length(sync_redis) == (1 if status == 202 else 0)


async def test_post_payments_accepts_unsigned_delivery_in_development_mode_with_warning(
    store: Store, sync_redis: redis.Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = intake_settings(redis_url, webhook_secrets="", webhook_tokens="", dev_mode=True)
    async with intake_client(settings, store) as client:
        response = await client.post("/payments/bitcoin", content=BODY)

    assert response.status_code == 202
    assert queue_length(sync_redis) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "service.intake"]
    assert warnings == [
        f"webhook accepted without authentication (development mode) request_id={response.headers['x-request-id']}"
    ]


async def test_post_payments_checks_signature_even_in_development_mode(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url, dev_mode=True)
    async with intake_client(settings, store) as client:
        response = await post_signed(client, "bitcoin", BODY, secret=OLD_SECRET)

    assert response.status_code == 401
    assert queue_length(sync_redis) == 0


# --- replays of one delivery ---------------------------------------------------------------------------


async def test_post_payments_answers_replayed_delivery_without_processing_it(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    settings = intake_settings(redis_url)
    headers = signed_headers(BODY, msg_id="msg_replayed")
    async with intake_client(settings, store) as client:
        first = await client.post("/payments/bitcoin", content=BODY, headers=headers)
        # Forget the payment itself: only the stored delivery can now keep a replay from enqueueing.
        sync_redis.delete(f"resque:payq:unique:bitcoin:{TXID}:1", "resque:queue:bitcoin:incoming")
        replay = await client.post("/payments/bitcoin", content=BODY, headers=headers)
        fresh = await post_signed(client, "bitcoin", BODY, msg_id="msg_another")

    assert first.status_code == replay.status_code == 202
    assert first.json()["delivery"] == "new" and replay.json()["delivery"] == "duplicate"
    assert replay.json()["payments"] == first.json()["payments"]
    assert replay.json()["request_id"] == first.json()["request_id"]
    assert fresh.json()["payments"][0]["status"] == "enqueued"
    assert queue_length(sync_redis) == 1
    ttl = sync_redis.ttl("resque:payq:delivery:msg_replayed")
    assert settings.delivery_retention_s - 60 < ttl <= settings.delivery_retention_s


async def test_post_payments_processes_retry_of_delivery_that_got_503(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, durable=False)
    server.start()
    store = Store.from_url(server.url)
    headers = signed_headers(BODY, msg_id="msg_retried")
    try:
        async with intake_client(intake_settings(server.url), store) as client:
            server.stop()
            refused = await client.post("/payments/bitcoin", content=BODY, headers=headers)
            server.start()
            retried = await client.post("/payments/bitcoin", content=BODY, headers=headers)
        with redis.Redis.from_url(server.url) as check:
            length = check.llen("resque:queue:bitcoin:incoming")
    finally:
        await store.close()
        server.stop()

    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.json()["error"] == "unavailable"
    assert retried.status_code == 202
    assert retried.json()["delivery"] == "new" and retried.json()["payments"][0]["status"] == "enqueued"
    assert length == 1
