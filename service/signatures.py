"""Standard Webhooks signatures (HMAC-SHA256) and secret URL tokens, both checked in constant time."""

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence

from service.errors import InvalidSignature

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300

_MIN_SECRET_BYTES = 24
_MAX_SECRET_BYTES = 64
_MAX_ID_CHARS = 256
_MAX_SIGNATURE_ENTRIES = 16
_MAX_TIMESTAMP_DIGITS = 12


def parse_secret(secret: str) -> bytes:
    """Return the key inside a `whsec_<base64>` secret; raise ValueError saying what is wrong."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"webhook secret must start with {SECRET_PREFIX!r}")
    encoded = secret.removeprefix(SECRET_PREFIX)
    # Senders often drop base64 padding; put it back before decoding strictly.
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not valid base64 after the whsec_ prefix") from None
    if not _MIN_SECRET_BYTES <= len(key) <= _MAX_SECRET_BYTES:
        raise ValueError(f"webhook secret must hold {_MIN_SECRET_BYTES} to {_MAX_SECRET_BYTES} bytes, not {len(key)}")
    return key


def sign_webhook(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the `webhook-signature` value (`v1,<base64>`) for one message."""
    key = parse_secret(secret) if isinstance(secret, str) else secret
    return f"v1,{base64.b64encode(_digest(key, msg_id, timestamp, body)).decode('ascii')}"


def verify_webhook(
    secrets: Sequence[str | bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: int,
    *,
    tolerance_s: int = TOLERANCE_S,
) -> str:
    """Verify a Standard Webhooks delivery over its raw body and return its `webhook-id`.

    Any `v1` signature made with any of `secrets` passes, so secrets can be rotated. Every failure,
    malformed headers included, raises InvalidSignature.
    """
    keys = [parse_secret(secret) if isinstance(secret, str) else secret for secret in secrets]
    if not keys:
        raise InvalidSignature("no webhook secret is configured")
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = _header(lowered, "webhook-id")
    timestamp = _timestamp(_header(lowered, "webhook-timestamp"), now, tolerance_s)
    offered = _signatures(_header(lowered, "webhook-signature"))

    if len(msg_id) > _MAX_ID_CHARS or "." in msg_id or not msg_id.isprintable():
        raise InvalidSignature("webhook-id is malformed")
    # Compare against every candidate without stopping early, so timing says nothing about which failed.
    matched = False
    for key in keys:
        expected = _digest(key, msg_id, timestamp, body)
        for signature in offered:
            matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise InvalidSignature("no webhook signature matches")
    return msg_id


def token_matches(tokens: Iterable[str], given: str | None) -> bool:
    """Tell whether `given` equals one of the configured URL tokens, in constant time."""
    if not given:
        return False
    candidate = given.encode("utf-8")
    matched = False
    for token in tokens:
        if token:
            matched |= hmac.compare_digest(token.encode("utf-8"), candidate)
    return matched


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise InvalidSignature(f"{name} header is missing")
    return value.strip()


def _timestamp(value: str, now: int, tolerance_s: int) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > _MAX_TIMESTAMP_DIGITS:
        raise InvalidSignature("webhook-timestamp must be whole Unix seconds")
    timestamp = int(value)
    if timestamp < now - tolerance_s:
        raise InvalidSignature("webhook-timestamp is too old")
    if timestamp > now + tolerance_s:
        raise InvalidSignature("webhook-timestamp is too far in the future")
    return timestamp


def _signatures(value: str) -> list[bytes]:
    """Decode the `v1` entries of a webhook-signature header; other versions are skipped."""
    entries = value.split()
    if len(entries) > _MAX_SIGNATURE_ENTRIES:
        raise InvalidSignature("webhook-signature has too many entries")
    decoded = []
    for entry in entries:
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            decoded.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not decoded:
        raise InvalidSignature("webhook-signature has no valid v1 entry")
    return decoded
