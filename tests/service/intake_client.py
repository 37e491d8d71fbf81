"""Helpers for the intake tests: settings, an in-process client, and Standard Webhooks signing."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from service.app import create_app
from service.settings import Settings
from service.signatures import sign_webhook
from workers.connection import Store

SECRET = "whsec_" + base64.b64encode(b"payq intake tests: a 32-byte key").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"payq intake tests: rotated out!!").decode()
TOKEN = "bcy-url-token-7f3a9c"
DOGE_ADDRESS = "DH9fPpKHLiP5eaAD3pXxxUZmPktGNGTFp6"
TXID = "a1075db55d416d3ca199f55b6084e2115b9345e16c5cf302fc80e9d5fbf5d48d"
TAPROOT = "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"


def intake_settings(redis_url: str, **overrides: Any) -> Settings:
    """Settings for the intake tests: bitcoin on testnet (the BlockCypher capture), a secret and a token."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "webhook_secrets": SECRET,
        "webhook_tokens": TOKEN,
        "bitcoin_chain": "test",
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def intake_client(settings: Settings, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://payq.test") as client:
        yield client


def signed_headers(
    body: bytes, *, secret: str = SECRET, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def utxo_body(**changes: object) -> dict[str, object]:
    """A payq bitcoin payment to a testnet address with one confirmation."""
    body: dict[str, object] = {
        "txid": TXID,
        "output_index": 1,
        "address": "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",
        "amount": "0.00150000",
        "confirmations": 1,
    }
    body.update(changes)
    return body


async def post_signed(client: httpx.AsyncClient, network: str, body: bytes, **kwargs: Any) -> httpx.Response:
    return await client.post(f"/payments/{network}", content=body, headers=signed_headers(body, **kwargs))
