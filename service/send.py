"""``payq send``: post a payment to a running payq, signed the way a well-behaved sender signs it.

The body is a payq payment built from the given fields (a fresh sample by default) or a raw body
from a file. It is signed with the first of PAYQ_WEBHOOK_SECRETS (Standard Webhooks), or carries
the first of PAYQ_WEBHOOK_TOKENS as ``?token=``; with neither, it goes unsigned, which only
``payq dev`` accepts.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass

import base58
import httpx
import orjson
from embit import bech32
from xrpl.core import addresscodec

from service.networks import Chain, Network
from service.settings import Settings
from service.signatures import sign_webhook

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_S = 30.0

# A fixed 20-byte hash, so the sample addresses are valid and plainly not anybody's real wallet.
_SAMPLE_HASH = hashlib.sha256(b"payq sample address").digest()[:20]
_SEGWIT_HRPS = {Chain.MAIN: "bc", Chain.TEST: "tb", Chain.REGTEST: "bcrt"}
_DOGECOIN_P2PKH = {Chain.MAIN: 0x1E, Chain.TEST: 0x71, Chain.REGTEST: 0x6F}
_SAMPLE_AMOUNTS = {Network.BITCOIN: "0.00150000", Network.DOGECOIN: "42.00000000", Network.RIPPLE: "20.000000"}


@dataclass(frozen=True, slots=True)
class PaymentFields:
    """What ``payq send`` was told about the payment; anything left None gets a sample value."""

    address: str | None = None
    amount: str | None = None
    confirmations: int | None = None
    txid: str | None = None
    output_index: int = 0
    tx_hash: str | None = None
    destination_tag: int | None = None


def sample_address(network: Network, chain: Chain) -> str:
    """A valid address for ``network`` on ``chain`` that belongs to nobody."""
    if network is Network.BITCOIN:
        return str(bech32.encode(_SEGWIT_HRPS[chain], 0, _SAMPLE_HASH))
    if network is Network.DOGECOIN:
        encoded: bytes = base58.b58encode_check(bytes([_DOGECOIN_P2PKH[chain]]) + _SAMPLE_HASH)
        return encoded.decode("ascii")
    return str(addresscodec.encode_classic_address(_SAMPLE_HASH))


def build_payment(settings: Settings, network: Network, fields: PaymentFields) -> dict[str, object]:
    """A payq payment body: the given fields, the rest filled in so that payq enqueues it."""
    config = settings.network(network.value)
    watched = sorted(config.addresses)
    address = fields.address or (watched[0] if watched else sample_address(network, Chain(config.chain)))
    amount = fields.amount or _SAMPLE_AMOUNTS[network]
    if network is Network.RIPPLE:
        payment: dict[str, object] = {
            "tx_hash": fields.tx_hash or os.urandom(32).hex().upper(),
            "address": address,
            "amount": amount,
            "validated": True,
        }
        if fields.destination_tag is not None:
            payment["destination_tag"] = fields.destination_tag
        return payment
    return {
        "txid": fields.txid or os.urandom(32).hex(),
        "output_index": fields.output_index,
        "address": address,
        "amount": amount,
        "confirmations": config.confirmations if fields.confirmations is None else fields.confirmations,
    }


def sign_request(settings: Settings, body: bytes, now: int | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters that authenticate ``body`` with the configured secret or token."""
    if settings.webhook_secrets:
        msg_id = f"msg_{uuid.uuid4().hex}"
        timestamp = int(time.time()) if now is None else now
        signature = sign_webhook(settings.webhook_secrets[0].get_secret_value(), msg_id, timestamp, body)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
        return headers, {}
    if settings.webhook_tokens:
        return {}, {"token": settings.webhook_tokens[0].get_secret_value()}
    return {}, {}


def send_body(
    settings: Settings,
    network: Network,
    body: bytes,
    url: str = DEFAULT_URL,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Response:
    """POST ``body`` to ``<url>/payments/<network>``, authenticated; raise httpx.HTTPError when unreachable."""
    headers, params = sign_request(settings, body)
    headers["content-type"] = "application/json"
    with httpx.Client(base_url=url, timeout=TIMEOUT_S, transport=transport) as client:
        return client.post(f"/payments/{network.value}", content=body, headers=headers, params=params)


def encode_body(payment: dict[str, object]) -> bytes:
    return orjson.dumps(payment)
