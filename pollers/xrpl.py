"""The XRP Ledger poller: ``account_tx`` forward from a durable ledger cursor, and an optional stream.

Each watched account has its own cursor, the last validated ledger whose transactions are all in
Redis. A poll reads the latest validated ledger V, then every page of ``account_tx`` from the
cursor + 1 to V (markers are followed but never stored: servers forget them), and only then stores
V. Entries go through ``service.bodies.parse_body``, so the webhook intake and the poller apply the
same rules: validated ``tesSUCCESS`` Payments to a watched account, credited by
``meta.delivered_amount``, with their destination tag.

Streaming mode subscribes to the watched accounts over WebSocket for low latency. The stream has no
replay, so on every (re)connect the poller first subscribes, then backfills from the cursor over
the same connection, and backfills again every interval; only backfills move the cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from xrpl.asyncio.clients.exceptions import XRPLRequestFailureException, XRPLWebsocketException
from xrpl.models.requests import AccountTx, Ledger, Subscribe
from xrpl.models.requests.request import Request
from xrpl.models.response import Response

from pollers.backoff import Backoff, with_retries
from pollers.cursor import PollerState
from pollers.errors import LedgerError, LockLost, PollerError, RpcProtocolError, RpcUnavailable
from pollers.record import PaymentSink
from pollers.utxo import PollReport
from service.bodies import Observation, Status, parse_body
from service.errors import InvalidPayment
from service.networks import Chain, Network

logger = logging.getLogger(__name__)


class LedgerClient(Protocol):
    """What the poller needs of an xrpl-py client: ``AsyncJsonRpcClient`` and ``AsyncWebsocketClient`` both fit."""

    async def request(self, request: Request) -> Response: ...


class StreamClient(LedgerClient, Protocol):
    """A connected WebSocket client: requests, plus every message the server pushes."""

    async def send(self, request: Request) -> None: ...

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...


Connect = Callable[[], AbstractAsyncContextManager[StreamClient]]


@dataclass(frozen=True, slots=True)
class XrplConfig:
    """The accounts one XRP Ledger poller watches, and where a first run starts."""

    chain: Chain
    watched: frozenset[str]
    since: int | None = None
    page_limit: int | None = None


class XrplPoller:
    """Finds payments to watched XRP Ledger accounts."""

    def __init__(
        self,
        config: XrplConfig,
        client: LedgerClient,
        state: PollerState,
        sink: PaymentSink,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.client = client
        self.state = state
        self.sink = sink
        self.backoff = backoff or Backoff()
        self._clock = clock

    async def poll_once(self, client: LedgerClient | None = None) -> PollReport:
        """Read every watched account up to the latest validated ledger, then move the cursors."""
        client = client or self.client
        if not await self.state.hold_lock():
            raise LockLost("the ripple poller lock is held by another process")
        latest = await self._latest_validated(client)
        report = PollReport()
        for account in sorted(self.config.watched):
            await self._read_account(client, account, latest, report)
        return report

    async def _latest_validated(self, client: LedgerClient) -> int:
        result = await self._request(client, Ledger(ledger_index="validated"))
        index = result.get("ledger_index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise RpcProtocolError("the validated ledger reply has no ledger_index")
        return index

    async def _read_account(self, client: LedgerClient, account: str, latest: int, report: PollReport) -> None:
        cursor = await self.state.load_cursor(account)
        if cursor is not None:
            low = int(cursor["ledger"]) + 1
        elif self.config.since is not None:
            low = self.config.since
        else:
            logger.info("no cursor yet, reading the full history the server holds network=ripple account=%s", account)
            low = -1
        if low > latest:
            return
        marker: object = None
        pages = 0
        while True:
            request = AccountTx(
                account=account, ledger_index_min=low, ledger_index_max=latest, forward=True,
                limit=self.config.page_limit, marker=marker,
            )  # fmt: skip
            if not await self.state.hold_lock():  # renewed per page: an account's history can be long
                raise LockLost("the ripple poller lock is held by another process")
            result = await self._request(client, request)
            transactions = result.get("transactions")
            if not isinstance(transactions, list):
                raise RpcProtocolError("account_tx reply has no transactions list")
            for entry in transactions:
                await self.handle_transaction(entry, report)
            pages += 1
            marker = result.get("marker")
            if not marker:
                break
        await self.state.save_cursor({"ledger": latest}, account)
        logger.debug("account read network=ripple account=%s from=%s to=%s pages=%s", account, low, latest, pages)

    async def handle_transaction(self, entry: object, report: PollReport) -> None:
        """Credit one ``account_tx`` entry or stream message, if it is a payment to a watched account."""
        try:
            observations = parse_body(
                Network.RIPPLE, self.config.chain, entry, self.config.watched,
                source="poller", received_at=self._clock(),
            )  # fmt: skip
        except InvalidPayment as exc:
            ref = entry.get("hash") if isinstance(entry, dict) else None
            logger.error("ledger transaction skipped, not a valid payment network=ripple hash=%s error=%s", ref, exc)
            return
        for observation in observations:
            await self._observe(observation, report)

    async def _observe(self, observation: Observation, report: PollReport) -> None:
        payment = observation.payment
        if observation.status is Status.PAYMENT and payment is not None:
            new = await self.sink.record(payment)
            report.found += 1
            report.enqueued += int(new)
            logger.info(
                "payment found network=ripple id=%s address=%s destination_tag=%s amount=%s currency=%s enqueued=%s",
                payment.id, payment.address, payment.destination_tag, payment.amount, payment.currency,
                "yes" if new else "already",
            )  # fmt: skip
        elif observation.status is Status.REJECTED:
            logger.info("transaction not credited network=ripple ref=%s reason=%s", observation.ref, observation.reason)
        else:
            logger.debug("transaction passed over network=ripple ref=%s status=%s reason=%s",
                         observation.ref, observation.status, observation.reason)  # fmt: skip

    async def _request(self, client: LedgerClient, request: Request) -> dict[str, Any]:
        async def once() -> dict[str, Any]:
            response = await _send(client, request)
            result: dict[str, Any] = response.result if isinstance(response.result, dict) else {}
            if not response.is_successful():
                raise LedgerError(str(result.get("error", "unknown")), result.get("error_message"))
            return result

        return await with_retries(once, self.backoff, what=str(request.method))

    # streaming

    async def stream(self, connect: Connect, stop: asyncio.Event, interval_s: float) -> None:
        """Subscribe, backfill from the cursor, then credit pushed transactions; reconnect on any failure."""
        failures = 0
        while not stop.is_set():
            try:
                async with connect() as client:
                    await self._request(client, Subscribe(accounts=sorted(self.config.watched)))
                    logger.info("stream subscribed, backfilling network=ripple accounts=%s", len(self.config.watched))
                    await self.poll_once(client)
                    failures = 0
                    await self._consume(client, stop, interval_s)
            except LockLost:
                raise
            except (PollerError, OSError, XRPLWebsocketException, TimeoutError) as exc:
                failures += 1
                logger.warning("stream interrupted network=ripple failures=%s error=%s", failures, exc)
            if stop.is_set():
                break
            delay_s = self.backoff.delay_s(failures) if failures else self.backoff.base_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay_s)

    async def _consume(self, client: StreamClient, stop: asyncio.Event, interval_s: float) -> None:
        loop = asyncio.get_running_loop()
        messages = aiter(client)
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        pending: asyncio.Future[Any] | None = None
        next_backfill = loop.time() + interval_s
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(messages))
                timeout = max(next_backfill - loop.time(), 0.0)
                done, _ = await asyncio.wait({pending, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    return
                if pending in done:
                    message, pending = _message(pending), None
                    if message is None:
                        logger.warning("stream closed by the server network=ripple")
                        return
                    if message.get("type") == "transaction":
                        await self.handle_transaction(message, PollReport())
                    continue
                # A quiet interval: backfill, which also notices a connection that died silently.
                await self.poll_once(client)
                next_backfill = loop.time() + interval_s
        finally:
            for future in (pending, stopping):
                if future is not None:
                    future.cancel()


async def _send(client: LedgerClient, request: Request) -> Response:
    try:
        return await client.request(request)
    except XRPLRequestFailureException as exc:
        # xrpl-py raises this when the body is not JSON: rippled's "503 Server is overloaded", a proxy's 429.
        if isinstance(exc.error, int):
            retryable = exc.error == httpx.codes.TOO_MANY_REQUESTS or exc.error >= httpx.codes.INTERNAL_SERVER_ERROR
            if retryable:
                raise RpcUnavailable(f"{request.method} got HTTP {exc.error}") from exc
            raise RpcProtocolError(f"{request.method} got HTTP {exc.error} without a JSON result") from exc
        raise LedgerError(str(exc.error), exc.error_message) from exc
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise RpcUnavailable(f"{request.method} timed out") from exc
    except (httpx.TransportError, OSError, XRPLWebsocketException) as exc:
        raise RpcUnavailable(f"{request.method} could not reach the server: {type(exc).__name__}") from exc


def _message(future: asyncio.Future[Any]) -> Mapping[str, Any] | None:
    try:
        message = future.result()
    except StopAsyncIteration:
        return None
    return message if isinstance(message, dict) else {}
