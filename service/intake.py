"""``POST /payments/{network}``: the webhook intake.

Each delivery goes through the same phases: cap the body (413), authenticate it over the raw bytes
(401), answer a replayed Standard Webhooks delivery from its stored answer, parse and validate it
(422), then record it (service.recording), which enqueues each confirmed payment exactly once.
A 202 goes out only after Redis holds every job; when Redis cannot be reached the answer is 503 so
the sender retries, and nothing is remembered about the delivery.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, TypeVar

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel
from redis.exceptions import RedisError
from starlette.requests import ClientDisconnect

from service.bodies import Observation, parse_body
from service.errors import InvalidPayment, InvalidSignature, PayqError
from service.networks import Chain, Network
from service.recording import (
    NotReplicated,
    Outcome,
    Result,
    load_delivery,
    record_delivery,
    record_observations,
    records_in_one_step,
    save_delivery,
)
from service.settings import NETWORKS, Settings
from service.signatures import token_matches, verify_webhook
from workers.connection import Store

logger = logging.getLogger(__name__)

T = TypeVar("T")

REQUEST_ID_HEADER = "X-Request-Id"
RETRY_AFTER_S = 5
# Redis steps one app runs at once: a burst of deliveries queues here, below the connection pool's size
# (workers.connection.MAX_CONNECTIONS), leaving connections free for health checks and metrics.
REDIS_CONCURRENCY = 48
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}")
_SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


# --- the documented answers --------------------------------------------------------------------------------


class PaymentOutcome(BaseModel):
    """What became of one payment (or one transaction payq will not credit)."""

    id: str
    status: Literal["enqueued", "duplicate", "pending", "rejected", "ignored"]
    reason: str | None = None
    confirmations: int | None = None
    queue: str | None = None


class IntakeAnswer(BaseModel):
    """The 202 answer: every payment the delivery reported, and the queue its jobs go to."""

    request_id: str
    network: str
    queue: str
    delivery: Literal["new", "duplicate"]
    payments: list[PaymentOutcome]


class ErrorAnswer(BaseModel):
    """Every refusal: a stable error code, a message, the offending field when there is one."""

    error: str
    message: str
    field: str | None = None
    request_id: str


class _Refused(PayqError):
    """A delivery payq answers with an error status; nothing was changed."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field


@dataclass(slots=True)
class _Delivery:
    """One request as it moves through the phases; the parts the outcome line and the metrics need."""

    request_id: str
    network: str
    started: float = field(default_factory=time.monotonic)
    auth: str = "none"
    webhook_id: str | None = None
    replayed: bool = False
    outcomes: list[Outcome] = field(default_factory=list)


_OUTCOMES = {
    202: "accepted",
    400: "bad_request",
    401: "unauthorized",
    404: "unknown_network",
    413: "too_large",
    422: "invalid",
    503: "unavailable",
}


class _MetricsHook(Protocol):
    def observe_webhook(self, network: str, outcome: str) -> None: ...

    def observe_enqueue_latency(self, seconds: float) -> None: ...


# --- the route ---------------------------------------------------------------------------------------------

router = APIRouter(tags=["payments"])


def _error_response(description: str) -> dict[str, Any]:
    return {"model": ErrorAnswer, "description": description}


@router.post(
    "/payments/{network}",
    status_code=202,
    summary="Report incoming payments",
    response_model=IntakeAnswer,
    responses={
        202: {"model": IntakeAnswer, "description": "Recorded: every confirmed payment's job is in Redis"},
        400: _error_response("The request could not be read"),
        401: _error_response("No valid Standard Webhooks signature or URL token"),
        404: _error_response("Unknown network"),
        413: _error_response("The body is larger than PAYQ_MAX_BODY_BYTES"),
        422: _error_response("The body is not JSON, or not a valid payment or transaction"),
        503: _error_response("Redis is unreachable (or too few replicas have the jobs); retry later"),
    },
    openapi_extra={
        "parameters": [
            {"name": "webhook-id", "in": "header", "required": False, "schema": {"type": "string"}},
            {"name": "webhook-timestamp", "in": "header", "required": False, "schema": {"type": "string"}},
            {"name": "webhook-signature", "in": "header", "required": False, "schema": {"type": "string"}},
            {
                "name": "token",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "A URL token from PAYQ_WEBHOOK_TOKENS, for senders that cannot sign",
            },
            {"name": REQUEST_ID_HEADER, "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "requestBody": {
            "required": True,
            "description": (
                'A payq payment (or an array of them, or {"payments": [...]}), a BlockCypher TX object, or an '
                "XRP Ledger transaction as account_tx or the subscribe stream returns it (tx_json + meta)."
            ),
            "content": {"application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}}},
        },
    },
)
async def post_payments(
    request: Request,
    network: Annotated[str, Path(description="bitcoin, dogecoin or ripple", json_schema_extra={"enum": NETWORKS})],
) -> Response:
    """Verify, validate and enqueue the payments a webhook delivery reports."""
    delivery = _Delivery(request_id=_request_id(request), network=network if network in NETWORKS else "unknown")
    try:
        status, body = await _handle(request, network, delivery)
    except _Refused as refusal:
        status, body = refusal.status, _refusal_body(refusal, delivery)
        _log_refusal(delivery, refusal)
    except Exception:
        # Only a bug in payq lands here; every input is meant to end in one of the answers above.
        logger.exception("webhook failed request_id=%s network=%s", delivery.request_id, delivery.network)
        status, body = 500, _refusal_body(_Refused(500, "internal", "payq failed to handle this delivery"), delivery)
    _observe(request, delivery, status)
    headers = {REQUEST_ID_HEADER: delivery.request_id}
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


async def _handle(request: Request, network_name: str, delivery: _Delivery) -> tuple[int, bytes]:
    settings: Settings = request.app.state.settings
    store: Store = request.app.state.store
    if network_name not in NETWORKS:
        raise _Refused(404, "unknown_network", f"payq takes payments on {', '.join(NETWORKS)}", "network")
    network = Network(network_name)

    raw = await _read_body(request, settings.max_body_bytes)
    delivery.webhook_id, delivery.auth = _authenticate(request, settings, raw)
    if delivery.webhook_id is not None and records_in_one_step(settings):
        return await _handle_signed(request, settings, store, network, raw, delivery, delivery.webhook_id)
    if delivery.webhook_id is not None:
        stored = await _redis(request, load_delivery(store, delivery.webhook_id))
        if stored is not None:
            delivery.replayed = True
            _log_replay(delivery)
            return 202, _mark_duplicate(stored)

    observations = _parse(settings, network, raw, delivery.request_id)
    delivery.outcomes = await _redis(request, record_observations(store, settings, observations))
    answer = IntakeAnswer(
        request_id=delivery.request_id,
        network=network.value,
        queue=settings.network(network.value).queue,
        delivery="new",
        payments=[PaymentOutcome.model_validate(o.to_json()) for o in delivery.outcomes],
    )
    body = orjson.dumps(answer.model_dump(exclude_none=True))
    if delivery.webhook_id is not None:
        await _redis(request, save_delivery(store, delivery.webhook_id, body, settings.delivery_retention_s))
    _log_accepted(delivery)
    return 202, body


async def _handle_signed(
    request: Request,
    settings: Settings,
    store: Store,
    network: Network,
    raw: bytes,
    delivery: _Delivery,
    webhook_id: str,
) -> tuple[int, bytes]:
    """A signed delivery in one Redis round trip: the replay check, the enqueues and the stored answer
    are one script (service.recording.record_delivery)."""
    observations = _parse(settings, network, raw, delivery.request_id)
    frame = IntakeAnswer(
        request_id=delivery.request_id,
        network=network.value,
        queue=settings.network(network.value).queue,
        delivery="new",
        payments=[],
    )
    empty = orjson.dumps(frame.model_dump(exclude_none=True))  # ends with "payments":[]} as the last member
    record = await _redis(request, record_delivery(store, settings, webhook_id, observations, empty[:-2], empty[-2:]))
    if record.replayed:
        delivery.replayed = True
        _log_replay(delivery)
        return 202, _mark_duplicate(record.answer)
    delivery.outcomes = record.outcomes
    _log_accepted(delivery)
    return 202, record.answer


# --- phases ------------------------------------------------------------------------------------------------


def _request_id(request: Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER)
    if given is not None and _SANE_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


async def _read_body(request: Request, cap: int) -> bytes:
    """Read the raw body, refusing it as soon as it is known to exceed ``cap`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
            raise _Refused(400, "bad_request", "Content-Length is not a number")
        if int(declared) > cap:
            raise _Refused(413, "too_large", f"the body is larger than {cap} bytes")
    received = bytearray()
    try:
        async for chunk in request.stream():
            received += chunk
            if len(received) > cap:
                raise _Refused(413, "too_large", f"the body is larger than {cap} bytes")
    except ClientDisconnect:
        raise _Refused(400, "bad_request", "the client went away before the body was complete") from None
    return bytes(received)


def _authenticate(request: Request, settings: Settings, raw: bytes) -> tuple[str | None, str]:
    """Return the delivery's webhook-id (signed deliveries only) and how it was authenticated."""
    headers = request.headers
    if any(name in headers for name in _SIGNATURE_HEADERS):
        secrets = [secret.get_secret_value() for secret in settings.webhook_secrets]
        try:
            webhook_id = verify_webhook(
                secrets, dict(headers), raw, now=int(time.time()), tolerance_s=settings.signature_tolerance_s
            )
        except InvalidSignature as exc:
            raise _Refused(401, "unauthorized", str(exc)) from None
        return webhook_id, "signature"
    token = request.query_params.get("token")
    if token is not None:
        if token_matches((t.get_secret_value() for t in settings.webhook_tokens), token):
            return None, "token"
        raise _Refused(401, "unauthorized", "the URL token does not match")
    if settings.dev_mode:
        return None, "none"
    raise _Refused(401, "unauthorized", "a Standard Webhooks signature or a URL token is required")


def _parse(settings: Settings, network: Network, raw: bytes, request_id: str) -> list[Observation]:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Refused(422, "invalid_json", f"the body is not JSON: {exc}", "body") from None
    config = settings.network(network.value)
    try:
        return parse_body(
            network,
            Chain(config.chain),
            document,
            config.addresses,
            source="webhook",
            received_at=datetime.now(UTC),
            request_id=request_id,
        )
    except InvalidPayment as exc:
        raise _Refused(422, "invalid_payment", exc.message, exc.field or "body") from None
    except ValueError as exc:
        # The domain names the field for every input it anticipates; this keeps the rest a 422 too.
        logger.warning("webhook body failed validation request_id=%s error=%s", request_id, exc)
        raise _Refused(422, "invalid_payment", "the body is not a valid payment", "body") from None


async def _redis(request: Request, step: Awaitable[T]) -> T:
    """Await a Redis step; an unreachable Redis (or lagging replicas) becomes a 503 the sender retries."""
    state = request.app.state
    slots: asyncio.Semaphore | None = getattr(state, "intake_redis_slots", None)
    if slots is None:
        slots = state.intake_redis_slots = asyncio.Semaphore(REDIS_CONCURRENCY)
    try:
        async with slots:
            result: T = await step
    except NotReplicated as exc:
        raise _Refused(503, "unavailable", str(exc)) from None
    except (RedisError, OSError) as exc:
        logger.warning("redis unreachable error=%s", type(exc).__name__)
        raise _Refused(503, "unavailable", "Redis is unreachable; retry later") from None
    return result


def _mark_duplicate(stored: bytes) -> bytes:
    answer = orjson.loads(stored)
    answer["delivery"] = "duplicate"
    return orjson.dumps(answer)


def _refusal_body(refusal: _Refused, delivery: _Delivery) -> bytes:
    answer = ErrorAnswer(
        error=refusal.error, message=refusal.message, field=refusal.field, request_id=delivery.request_id
    )
    return orjson.dumps(answer.model_dump(exclude_none=True))


# --- the outcome line and the metrics ----------------------------------------------------------------------


def _log_accepted(delivery: _Delivery) -> None:
    counts = dict.fromkeys(Result, 0)
    for outcome in delivery.outcomes:
        counts[outcome.result] += 1
    if delivery.auth == "none":
        logger.warning("webhook accepted without authentication (development mode) request_id=%s", delivery.request_id)
    logger.info(
        "webhook accepted request_id=%s network=%s status=202 auth=%s webhook_id=%s "
        "enqueued=%s duplicate=%s pending=%s rejected=%s ignored=%s",
        delivery.request_id,
        delivery.network,
        delivery.auth,
        delivery.webhook_id,
        counts[Result.ENQUEUED],
        counts[Result.DUPLICATE],
        counts[Result.PENDING],
        counts[Result.REJECTED],
        counts[Result.IGNORED],
    )


def _log_replay(delivery: _Delivery) -> None:
    logger.info(
        "webhook replayed request_id=%s network=%s status=202 auth=%s webhook_id=%s",
        delivery.request_id,
        delivery.network,
        delivery.auth,
        delivery.webhook_id,
    )


def _log_refusal(delivery: _Delivery, refusal: _Refused) -> None:
    logger.warning(
        "webhook refused request_id=%s network=%s status=%s error=%s field=%s message=%s",
        delivery.request_id,
        delivery.network,
        refusal.status,
        refusal.error,
        refusal.field,
        refusal.message,
    )


def _observe(request: Request, delivery: _Delivery, status: int) -> None:
    """Count the delivery in the app's metrics (service.metrics), when the app has them."""
    metrics: _MetricsHook | None = getattr(request.app.state, "metrics", None)
    if metrics is None:
        return
    outcome = {
        202: "duplicate_delivery" if delivery.replayed else "accepted",
        401: "unauthorized",
        404: "unknown_network",
        413: "too_large",
        422: "invalid",
    }
    metrics.observe_webhook(delivery.network, outcome.get(status, "unavailable" if status == 503 else "error"))
    if any(o.result is Result.ENQUEUED for o in delivery.outcomes):
        metrics.observe_enqueue_latency(time.monotonic() - delivery.started)
