"""``POST /payments/{network}``: the webhook intake.

Each delivery goes through the same phases: cap the body (413), authenticate it over the raw bytes
(401), parse and validate it (422), then record it (service.deliveries): a replayed Standard
Webhooks delivery gets its stored answer, and each confirmed payment is enqueued exactly once.
A 202 goes out only after Redis holds every job; when Redis cannot be reached the answer is 503 so
the sender retries, and nothing is remembered about the delivery.

The intake is payq's busiest endpoint, so the app answers it as plain ASGI ahead of FastAPI's
routing, dependency solving and response models (``serve``), which would otherwise cost more than
the intake's own work. The FastAPI route below documents the endpoint in the OpenAPI file and
answers through the same ``Intake`` when the shortcut is not in front of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, TypeVar
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel
from redis.exceptions import RedisError
from starlette.types import Message, Receive, Scope, Send

from service.bodies import Observation, parse_body
from service.deliveries import DeliveryRecorder, load_delivery, save_delivery
from service.errors import InvalidPayment, InvalidSignature, PayqError
from service.networks import Chain, Network
from service.recording import NotReplicated, Outcome, Result, record_observations
from service.settings import NETWORKS, NetworkSettings, Settings
from service.signatures import parse_secret, token_matches, verify_webhook
from workers.connection import Store
from workers.logs import log_info

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
    client: str = "-"  # host:port, as uvicorn's access line names it (the intake's line stands in for that)
    started: float = field(default_factory=time.monotonic)
    auth: str = "none"
    webhook_id: str | None = None
    replayed: bool = False
    outcomes: list[Outcome] = field(default_factory=list)

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000


# The metrics' outcome label per answer status (a replayed delivery's 202 is "duplicate_delivery").
_METRIC_OUTCOMES = {
    202: "accepted",
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
    # service.app.PayqApp answers these requests ahead of FastAPI's routing (``serve``); this route
    # documents the endpoint and answers when the app is served without that shortcut.
    status, headers, body = await intake_of(request.app).answer(network, request.scope, request.receive)
    return Response(body, status_code=status, headers=dict(headers), media_type="application/json")


def is_intake_request(scope: Mapping[str, Any]) -> bool:
    """Whether an ASGI request is a ``POST /payments/{network}``."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.startswith("/payments/") and path.count("/") == 2 and len(path) > len("/payments/")


async def serve(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a ``POST /payments/{network}`` as plain ASGI, without the framework's per-request layers."""
    network = scope["path"].rpartition("/")[2]
    status, headers, body = await intake_of(app).answer(network, scope, receive)
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def intake_of(app: Any) -> Intake:
    """The app's intake, built on first use (the store may only exist once the app has started)."""
    state = app.state
    intake: Intake | None = getattr(state, "intake", None)
    if intake is None or intake.store is not state.store:
        intake = state.intake = Intake(state.settings, state.store, getattr(state, "metrics", None))
    return intake


class Intake:
    """One app's webhook intake, with what can be worked out once: secrets, tokens, queues, the recorder."""

    def __init__(self, settings: Settings, store: Store, metrics: _MetricsHook | None) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.recorder = DeliveryRecorder(store, settings)
        self._secrets = [parse_secret(secret.get_secret_value()) for secret in settings.webhook_secrets]
        self._tokens = [token.get_secret_value() for token in settings.webhook_tokens]
        self._networks = {name: settings.network(name) for name in NETWORKS}
        # Bounds the Redis steps of the deliveries recorded one at a time (while waiting for replicas).
        self._redis_slots = asyncio.Semaphore(REDIS_CONCURRENCY)

    async def answer(self, network: str, scope: Scope, receive: Receive) -> tuple[int, list[tuple[str, str]], bytes]:
        """The status, extra headers and JSON body that answer one delivery."""
        headers = _headers(scope)
        delivery = _Delivery(_request_id(headers), network if network in NETWORKS else "unknown", _client(scope))
        try:
            status, body = await self._handle(network, headers, scope, receive, delivery)
        except _Refused as refusal:
            status, body = refusal.status, _refusal_body(refusal, delivery)
            _log_refusal(delivery, refusal)
        except Exception:
            # Only a bug in payq lands here; every input is meant to end in one of the answers above.
            logger.exception(
                "webhook failed request_id=%s network=%s status=500 client=%s",
                delivery.request_id,
                delivery.network,
                delivery.client,
            )
            failure = _Refused(500, "internal", "payq failed to handle this delivery")
            status, body = 500, _refusal_body(failure, delivery)
        self._observe(delivery, status)
        extra = [(REQUEST_ID_HEADER, delivery.request_id)]
        if status == 503:
            extra.append(("Retry-After", str(RETRY_AFTER_S)))
        return status, extra, body

    async def _handle(
        self, network_name: str, headers: dict[str, str], scope: Scope, receive: Receive, delivery: _Delivery
    ) -> tuple[int, bytes]:
        settings = self.settings
        if network_name not in NETWORKS:
            raise _Refused(404, "unknown_network", f"payq takes payments on {', '.join(NETWORKS)}", "network")
        network = Network(network_name)
        raw = await _read_body(receive, headers.get("content-length"), settings.max_body_bytes)
        delivery.webhook_id, delivery.auth = self._authenticate(headers, scope, raw)
        config = self._networks[network.value]
        observations = _parse(config, network, raw, delivery.request_id)
        frame: dict[str, Any] = {
            "request_id": delivery.request_id,
            "network": network.value,
            "queue": config.queue,
            "delivery": "new",
            "payments": [],
        }
        if settings.redis_wait_replicas > 0:
            return await self._handle_one_at_a_time(delivery, observations, frame)
        empty = orjson.dumps(frame)  # ends with "payments":[]} as the last member
        record = await self._redis(self.recorder.record(delivery.webhook_id, observations, empty[:-2], empty[-2:]))
        if record.replayed:
            return self._replayed(delivery, record.answer)
        delivery.outcomes = record.outcomes
        _log_accepted(delivery)
        return 202, record.answer

    async def _handle_one_at_a_time(
        self, delivery: _Delivery, observations: list[Observation], frame: dict[str, Any]
    ) -> tuple[int, bytes]:
        """Record a delivery while waiting for replicas: the replay check, the enqueues (then WAIT), and
        the stored answer are separate steps on a connection of its own (service.recording)."""
        store, settings = self.store, self.settings
        if delivery.webhook_id is not None:
            stored = await self._redis(load_delivery(store, delivery.webhook_id), bounded=True)
            if stored is not None:
                return self._replayed(delivery, stored)
        delivery.outcomes = await self._redis(record_observations(store, settings, observations), bounded=True)
        body = orjson.dumps({**frame, "payments": [o.to_json() for o in delivery.outcomes]})
        if delivery.webhook_id is not None:
            retention = settings.delivery_retention_s
            await self._redis(save_delivery(store, delivery.webhook_id, body, retention), bounded=True)
        _log_accepted(delivery)
        return 202, body

    def _replayed(self, delivery: _Delivery, stored: bytes) -> tuple[int, bytes]:
        delivery.replayed = True
        _log_replay(delivery)
        answer = orjson.loads(stored)
        answer["delivery"] = "duplicate"
        return 202, orjson.dumps(answer)

    def _authenticate(self, headers: dict[str, str], scope: Scope, raw: bytes) -> tuple[str | None, str]:
        """Return the delivery's webhook-id (signed deliveries only) and how it was authenticated."""
        if not headers.keys().isdisjoint(_SIGNATURE_HEADERS):
            try:
                webhook_id = verify_webhook(
                    self._secrets, headers, raw, now=int(time.time()), tolerance_s=self.settings.signature_tolerance_s
                )
            except InvalidSignature as exc:
                raise _Refused(401, "unauthorized", str(exc)) from None
            return webhook_id, "signature"
        token = _query_token(scope)
        if token is not None:
            if token_matches(self._tokens, token):
                return None, "token"
            raise _Refused(401, "unauthorized", "the URL token does not match")
        if self.settings.dev_mode:
            return None, "none"
        raise _Refused(401, "unauthorized", "a Standard Webhooks signature or a URL token is required")

    async def _redis(self, step: Awaitable[T], *, bounded: bool = False) -> T:
        """Await a Redis step; an unreachable Redis (or lagging replicas) becomes a 503 the sender retries."""
        try:
            if bounded:
                async with self._redis_slots:
                    return await step
            return await step
        except NotReplicated as exc:
            raise _Refused(503, "unavailable", str(exc)) from None
        except (RedisError, OSError) as exc:
            logger.warning("redis unreachable error=%s", type(exc).__name__)
            raise _Refused(503, "unavailable", "Redis is unreachable; retry later") from None

    def _observe(self, delivery: _Delivery, status: int) -> None:
        """Count the delivery in the app's metrics (service.metrics), when the app has them."""
        if self.metrics is None:
            return
        outcome = "duplicate_delivery" if status == 202 and delivery.replayed else _METRIC_OUTCOMES.get(status, "error")
        self.metrics.observe_webhook(delivery.network, outcome)
        if any(o.result is Result.ENQUEUED for o in delivery.outcomes):
            self.metrics.observe_enqueue_latency(time.monotonic() - delivery.started)


# --- phases ------------------------------------------------------------------------------------------------

_WANTED_HEADERS = frozenset(
    {b"content-length", REQUEST_ID_HEADER.lower().encode(), *(h.encode() for h in _SIGNATURE_HEADERS)}
)


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers the intake reads (ASGI names them in lower case), first occurrence first."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _WANTED_HEADERS:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


def _query_token(scope: Scope) -> str | None:
    query: bytes = scope.get("query_string", b"")
    if b"token=" not in query:
        return None
    tokens = parse_qs(query.decode("latin-1"), keep_blank_values=True).get("token")
    return tokens[0] if tokens else None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def _request_id(headers: dict[str, str]) -> str:
    given = headers.get(REQUEST_ID_HEADER.lower())
    if given is not None and _SANE_REQUEST_ID.fullmatch(given):
        return given
    return os.urandom(16).hex()  # as random as a UUID4's hex, at a third of the cost


async def _read_body(receive: Receive, declared: str | None, cap: int) -> bytes:
    """Read the raw body, refusing it as soon as it is known to exceed ``cap`` bytes."""
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
            raise _Refused(400, "bad_request", "Content-Length is not a number")
        if int(declared) > cap:
            raise _Refused(413, "too_large", f"the body is larger than {cap} bytes")
    received = b""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refused(400, "bad_request", "the client went away before the body was complete")
        received += bytes(message.get("body", b""))
        if len(received) > cap:
            raise _Refused(413, "too_large", f"the body is larger than {cap} bytes")
        if not message.get("more_body", False):
            return received


def _parse(config: NetworkSettings, network: Network, raw: bytes, request_id: str) -> list[Observation]:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Refused(422, "invalid_json", f"the body is not JSON: {exc}", "body") from None
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


def _refusal_body(refusal: _Refused, delivery: _Delivery) -> bytes:
    answer = {"error": refusal.error, "message": refusal.message, "field": refusal.field}
    if refusal.field is None:
        del answer["field"]
    return orjson.dumps({**answer, "request_id": delivery.request_id})


# --- the outcome line and the metrics ----------------------------------------------------------------------


def _log_accepted(delivery: _Delivery) -> None:
    """One line per accepted delivery, naming each payment it enqueued (a line per payment would cost as
    much again on the busiest path). It is the delivery's access line too (service.http)."""
    results = [outcome.result for outcome in delivery.outcomes]
    enqueued = ",".join(o.id for o in delivery.outcomes if o.result is Result.ENQUEUED) or "-"
    if delivery.auth == "none":
        logger.warning("webhook accepted without authentication (development mode) request_id=%s", delivery.request_id)
    log_info(
        logger,
        "webhook accepted request_id=%s network=%s status=202 client=%s ms=%.1f auth=%s webhook_id=%s "
        "enqueued=%s duplicate=%s pending=%s rejected=%s ignored=%s enqueued_ids=%s",
        delivery.request_id,
        delivery.network,
        delivery.client,
        delivery.elapsed_ms(),
        delivery.auth,
        delivery.webhook_id,
        results.count(Result.ENQUEUED),
        results.count(Result.DUPLICATE),
        results.count(Result.PENDING),
        results.count(Result.REJECTED),
        results.count(Result.IGNORED),
        enqueued,
    )


def _log_replay(delivery: _Delivery) -> None:
    log_info(
        logger,
        "webhook replayed request_id=%s network=%s status=202 client=%s ms=%.1f auth=%s webhook_id=%s",
        delivery.request_id,
        delivery.network,
        delivery.client,
        delivery.elapsed_ms(),
        delivery.auth,
        delivery.webhook_id,
    )


def _log_refusal(delivery: _Delivery, refusal: _Refused) -> None:
    logger.warning(
        "webhook refused request_id=%s network=%s status=%s client=%s ms=%.1f error=%s field=%s message=%s",
        delivery.request_id,
        delivery.network,
        refusal.status,
        delivery.client,
        delivery.elapsed_ms(),
        refusal.error,
        refusal.field,
        refusal.message,
    )
