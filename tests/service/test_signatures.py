"""Standard Webhooks verification against the documented vector and the official library."""

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from service.errors import InvalidSignature
from service.signatures import parse_secret, sign_webhook, token_matches, verify_webhook

# FIXTURE SW-1 (payment-sources §6.1).
SW1_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW1_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW1_TIMESTAMP = 1614265330
SW1_BODY = b'{"test": 2432232314}'
SW1_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def sw1_headers(**changes: str) -> dict[str, str]:
    headers = {
        "webhook-id": SW1_ID,
        "webhook-timestamp": str(SW1_TIMESTAMP),
        "webhook-signature": SW1_SIGNATURE,
    }
    headers.update({name.replace("_", "-"): value for name, value in changes.items()})
    return headers


def test_verify_webhook_accepts_sw1_vector() -> None:
    assert verify_webhook([SW1_SECRET], sw1_headers(), SW1_BODY, now=SW1_TIMESTAMP) == SW1_ID


def test_sign_webhook_reproduces_sw1_vector() -> None:
    assert sign_webhook(SW1_SECRET, SW1_ID, SW1_TIMESTAMP, SW1_BODY) == SW1_SIGNATURE


def test_verify_webhook_reads_headers_in_any_case() -> None:
    headers = {"Webhook-Id": SW1_ID, "WEBHOOK-TIMESTAMP": str(SW1_TIMESTAMP), "Webhook-Signature": SW1_SIGNATURE}
    assert verify_webhook([SW1_SECRET], headers, SW1_BODY, now=SW1_TIMESTAMP) == SW1_ID


def test_verify_webhook_accepts_any_rotated_secret() -> None:
    assert verify_webhook([OTHER_SECRET, SW1_SECRET], sw1_headers(), SW1_BODY, now=SW1_TIMESTAMP) == SW1_ID
    key = parse_secret(SW1_SECRET)
    assert verify_webhook([key], sw1_headers(), SW1_BODY, now=SW1_TIMESTAMP) == SW1_ID


def test_verify_webhook_accepts_any_listed_signature() -> None:
    other = sign_webhook(OTHER_SECRET, SW1_ID, SW1_TIMESTAMP, SW1_BODY)
    headers = sw1_headers(webhook_signature=f"v1a,AAAA {other} {SW1_SIGNATURE}")
    assert verify_webhook([SW1_SECRET], headers, SW1_BODY, now=SW1_TIMESTAMP) == SW1_ID


def test_verify_webhook_accepts_timestamp_at_tolerance_edges() -> None:
    assert verify_webhook([SW1_SECRET], sw1_headers(), SW1_BODY, now=SW1_TIMESTAMP + 300) == SW1_ID
    assert verify_webhook([SW1_SECRET], sw1_headers(), SW1_BODY, now=SW1_TIMESTAMP - 300) == SW1_ID


@pytest.mark.parametrize(("now", "message"), [(SW1_TIMESTAMP + 301, "too old"), (SW1_TIMESTAMP - 301, "future")])
def test_verify_webhook_refuses_stale_timestamp(now: int, message: str) -> None:
    with pytest.raises(InvalidSignature, match=message):
        verify_webhook([SW1_SECRET], sw1_headers(), SW1_BODY, now=now)


def test_verify_webhook_refuses_tampered_body() -> None:
    with pytest.raises(InvalidSignature, match="no webhook signature matches"):
        verify_webhook([SW1_SECRET], sw1_headers(), b'{"test": 2432232315}', now=SW1_TIMESTAMP)


def test_verify_webhook_refuses_wrong_secret() -> None:
    with pytest.raises(InvalidSignature, match="no webhook signature matches"):
        verify_webhook([OTHER_SECRET], sw1_headers(), SW1_BODY, now=SW1_TIMESTAMP)


def test_verify_webhook_refuses_without_secrets() -> None:
    with pytest.raises(InvalidSignature, match="no webhook secret"):
        verify_webhook([], sw1_headers(), SW1_BODY, now=SW1_TIMESTAMP)


@pytest.mark.parametrize(
    "headers",
    [
        {"webhook-timestamp": str(SW1_TIMESTAMP), "webhook-signature": SW1_SIGNATURE},
        {"webhook-id": SW1_ID, "webhook-signature": SW1_SIGNATURE},
        {"webhook-id": SW1_ID, "webhook-timestamp": str(SW1_TIMESTAMP)},
        sw1_headers(webhook_signature="garbage"),
        sw1_headers(webhook_signature="v1,!!!"),
        sw1_headers(webhook_signature="v1,"),
        sw1_headers(webhook_signature="v2," + SW1_SIGNATURE[3:]),
        sw1_headers(webhook_signature=" ".join([SW1_SIGNATURE] * 17)),
        sw1_headers(webhook_timestamp="1614265330.5"),
        sw1_headers(webhook_timestamp="-1614265330"),
        sw1_headers(webhook_timestamp="\uff11\uff16\uff11\uff14"),  # FULLWIDTH digits pass str.isdigit()
        sw1_headers(webhook_timestamp="9" * 40),
        sw1_headers(webhook_id="msg.with.dots"),
        sw1_headers(webhook_id="x" * 300),
    ],
)
def test_verify_webhook_refuses_malformed_headers(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidSignature):
        verify_webhook([SW1_SECRET], headers, SW1_BODY, now=SW1_TIMESTAMP)


def test_verify_webhook_accepts_official_library_signature() -> None:
    body = '{"txid":"aa","amount":"0.00150000"}'
    sent_at = datetime(2026, 12, 3, 15, 40, 37, tzinfo=UTC)
    signature = Webhook(OTHER_SECRET).sign("msg_2", sent_at, body)
    headers = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }

    assert verify_webhook([SW1_SECRET, OTHER_SECRET], headers, body.encode(), now=int(sent_at.timestamp()) + 10)
    assert sign_webhook(OTHER_SECRET, "msg_2", int(sent_at.timestamp()), body.encode()) == signature


def test_sign_webhook_verifies_with_official_library() -> None:
    body = b'{"payments":[]}'
    timestamp = int(time.time())
    headers = {
        "webhook-id": "msg_3",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(SW1_SECRET, "msg_3", timestamp, body),
    }
    assert Webhook(SW1_SECRET).verify(body, headers) == {"payments": []}


def test_parse_secret_decodes_padded_and_unpadded_base64() -> None:
    key = b"0123456789abcdef0123456789"
    padded = base64.b64encode(key).decode()
    assert padded.endswith("=")
    assert parse_secret("whsec_" + padded) == key
    assert parse_secret("whsec_" + padded.rstrip("=")) == key


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
        ("whsec_not*base64!", "not valid base64"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "24 to 64 bytes, not 23"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64 bytes, not 65"),
        ("whsec_", "not 0"),
    ],
)
def test_parse_secret_refuses_bad_secret(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_secret(secret)


def test_token_matches_finds_configured_token() -> None:
    assert token_matches(["old-token", "new-token"], "new-token")
    assert not token_matches(["old-token", "new-token"], "new-token2")
    assert not token_matches(["old-token"], "")
    assert not token_matches(["old-token"], None)
    assert not token_matches(["", "x"], "")
    assert not token_matches([], "anything")
