"""payq send: sample payments that payq accepts, signed with the first secret or carrying the first token."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import orjson
import pytest

from service.addresses import validate_address
from service.bodies import Status, parse_body
from service.networks import Chain, Network
from service.recording import payment_policy
from service.send import PaymentFields, build_payment, encode_body, sample_address, send_body, sign_request
from service.settings import Settings
from service.signatures import verify_webhook
from tests.service.intake_client import DOGE_ADDRESS, OLD_SECRET, SECRET, TOKEN


@pytest.mark.parametrize("network", list(Network))
@pytest.mark.parametrize("chain", list(Chain))
def test_sample_address_is_valid_on_its_network_and_chain(network: Network, chain: Chain) -> None:
    address = sample_address(network, chain)

    assert validate_address(network, chain, address) == address


@pytest.mark.parametrize(("network", "chain"), [("bitcoin", "main"), ("dogecoin", "test"), ("ripple", "main")])
def test_build_payment_gives_a_payment_payq_enqueues(network: str, chain: str) -> None:
    settings = Settings(**{f"{network}_chain": chain})  # type: ignore[arg-type]
    body = encode_body(build_payment(settings, Network(network), PaymentFields()))

    [observation] = parse_body(
        Network(network), Chain(chain), orjson.loads(body), frozenset(), source="webhook", received_at=datetime.now(UTC)
    )
    assert observation.status is Status.PAYMENT and observation.payment is not None
    assert payment_policy(settings).is_confirmed(observation.payment)


def test_build_payment_uses_given_fields_and_watched_address() -> None:
    settings = Settings(dogecoin_addresses=DOGE_ADDRESS)  # type: ignore[arg-type]
    fields = PaymentFields(amount="12.5", confirmations=2, txid="ab" * 32, output_index=3)

    payment = build_payment(settings, Network.DOGECOIN, fields)

    assert payment == {
        "txid": "ab" * 32,
        "output_index": 3,
        "address": DOGE_ADDRESS,
        "amount": "12.5",
        "confirmations": 2,
    }
    tagged = build_payment(settings, Network.RIPPLE, PaymentFields(destination_tag=9, tx_hash="CD" * 32))
    assert (tagged["tx_hash"], tagged["destination_tag"], tagged["validated"]) == ("CD" * 32, 9, True)


def test_sign_request_signs_with_first_secret() -> None:
    settings = Settings(webhook_secrets=f"{SECRET},{OLD_SECRET}", webhook_tokens=TOKEN)  # type: ignore[arg-type]
    headers, params = sign_request(settings, b'{"x":1}', now=1_800_000_000)

    assert params == {}
    assert verify_webhook([SECRET], headers, b'{"x":1}', now=1_800_000_000).startswith("msg_")


def test_sign_request_uses_first_token_without_secret() -> None:
    settings = Settings(webhook_tokens=f"{TOKEN},other")  # type: ignore[arg-type]

    assert sign_request(settings, b"{}") == ({}, {"token": TOKEN})
    assert sign_request(Settings(), b"{}") == ({}, {})


def test_send_body_posts_to_network_route() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"delivery": "new"})

    settings = Settings(webhook_tokens=TOKEN)  # type: ignore[arg-type]
    response = send_body(settings, Network.RIPPLE, b"{}", "http://payq.test", transport=httpx.MockTransport(answer))

    assert response.status_code == 202
    [request] = seen
    assert str(request.url) == f"http://payq.test/payments/ripple?token={TOKEN}"
    assert request.headers["content-type"] == "application/json" and request.content == b"{}"
