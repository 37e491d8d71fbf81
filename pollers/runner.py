"""Build pollers from settings and run them: one poll per interval, backoff on failure, never a crash loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from redis.exceptions import RedisError

from pollers.backoff import Backoff
from pollers.cursor import PollerState
from pollers.errors import LockLost, PollerConfigError, PollerError
from pollers.record import PaymentSink
from pollers.rpc import CoreRpc, redact_url
from pollers.utxo import PollReport, UtxoConfig, UtxoPoller
from pollers.xrpl import StreamClient, XrplConfig, XrplPoller
from service.addresses import validate_address
from service.errors import InvalidPayment, PayqError
from service.networks import Chain, Network
from service.settings import NETWORKS, NetworkName, Settings, SettingsError
from workers.connection import Store

logger = logging.getLogger(__name__)


class Poller(Protocol):
    async def poll_once(self) -> PollReport: ...


@dataclass(frozen=True, slots=True)
class PollOptions:
    """How one ``payq poll`` runs; None means the setting."""

    interval_s: float | None = None
    since: str | None = None
    stream: bool = False


def configured_networks(settings: Settings) -> list[NetworkName]:
    """Networks with an RPC URL and at least one watched address: those ``payq dev`` polls."""
    return [name for name in NETWORKS if settings.network(name).rpc_url and settings.network(name).addresses]


def watched_addresses(settings: Settings, name: NetworkName) -> frozenset[str]:
    net = settings.network(name)
    setting = f"PAYQ_{name.upper()}_ADDRESSES"
    if not net.addresses:
        raise SettingsError(f"{setting} is empty: the {name} poller has nothing to watch")
    try:
        return frozenset(validate_address(Network(name), Chain(net.chain), a, field=setting) for a in net.addresses)
    except InvalidPayment as exc:
        raise SettingsError(f"invalid setting {setting}: {exc}") from exc


def lock_ttl_ms(interval_s: float) -> int:
    """Long enough to survive a slow poll; a process that dies frees its network within it."""
    return int(max(30.0, 3 * interval_s) * 1000)


@asynccontextmanager
async def open_poller(
    settings: Settings, store: Store, name: NetworkName, options: PollOptions
) -> AsyncIterator[Poller]:
    """Build the poller for ``name`` from settings; closes its HTTP client on exit."""
    net = settings.network(name)
    if not net.rpc_url:
        raise SettingsError(f"PAYQ_{name.upper()}_RPC_URL is not set: the {name} poller needs a node or server")
    watched = watched_addresses(settings, name)
    interval_s = options.interval_s or settings.poller_interval_s
    state = PollerState(store, name, lock_ttl_ms=lock_ttl_ms(interval_s))
    sink = PaymentSink(store, settings, name)
    if name == "ripple":
        from xrpl.asyncio.clients import AsyncJsonRpcClient

        since = _ledger_since(options.since)
        yield XrplPoller(
            XrplConfig(Chain(net.chain), watched, since=since), AsyncJsonRpcClient(net.rpc_url), state, sink
        )
        return
    cookie = getattr(settings, f"{name}_rpc_cookie_file", None)
    rpc = CoreRpc(net.rpc_url, cookie_file=Path(cookie) if cookie else None)
    config = UtxoConfig(Network(name), Chain(net.chain), watched, required=net.confirmations, since=options.since)
    try:
        yield UtxoPoller(config, rpc, state, sink)
    finally:
        await rpc.aclose()


def _ledger_since(since: str | None) -> int | None:
    if since is None:
        return None
    if not since.isdigit():
        raise SettingsError(f"--since for ripple must be a ledger index, not {since!r}")
    return int(since)


async def run_poller(poller: Poller, name: str, stop: asyncio.Event, interval_s: float, backoff: Backoff) -> None:
    """Poll every ``interval_s`` until ``stop``; failures wait longer, with jitter, and never end the loop."""
    failures = 0
    while not stop.is_set():
        delay_s = interval_s
        try:
            await poller.poll_once()
            failures = 0
        except LockLost:
            logger.debug("another process polls this network network=%s", name)
        except (PollerError, PayqError, RedisError) as exc:
            failures += 1
            delay_s = max(interval_s, backoff.delay_s(failures))
            logger.warning("poll failed network=%s failures=%s retry_in_s=%.1f error=%s", name, failures, delay_s, exc)
        except Exception:
            failures += 1
            delay_s = max(interval_s, backoff.delay_s(failures))
            logger.exception("poll failed unexpectedly network=%s failures=%s retry_in_s=%.1f", name, failures, delay_s)
        await wait_for_stop(stop, delay_s)


async def wait_for_stop(stop: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout_s)


async def run_stream(poller: XrplPoller, url: str, stop: asyncio.Event, interval_s: float) -> None:
    """Streaming mode: hold the lock, then subscribe and backfill until ``stop``."""
    from xrpl.asyncio.clients import AsyncWebsocketClient

    def connect() -> contextlib.AbstractAsyncContextManager[StreamClient]:
        client: StreamClient = AsyncWebsocketClient(url)
        return client  # type: ignore[return-value]

    while not stop.is_set():
        try:
            await poller.stream(connect, stop, interval_s)
        except LockLost:
            logger.debug("another process polls this network network=ripple")
        except (PayqError, RedisError) as exc:
            logger.warning("stream failed network=ripple retry_in_s=%.1f error=%s", interval_s, exc)
        except Exception:
            logger.exception("stream failed unexpectedly network=ripple retry_in_s=%.1f", interval_s)
        await wait_for_stop(stop, interval_s)


async def poll_network(
    settings: Settings, store: Store, name: NetworkName, options: PollOptions, stop: asyncio.Event
) -> None:
    """Run one network's poller until ``stop`` (what ``payq poll NETWORK`` does)."""
    interval_s = options.interval_s or settings.poller_interval_s
    backoff = Backoff(base_s=min(interval_s, 5.0), max_s=max(interval_s, 300.0))
    async with open_poller(settings, store, name, options) as poller:
        url = str(settings.network(name).rpc_url)
        logger.info("poller started network=%s url=%s interval_s=%s stream=%s",
                    name, redact_url(url), interval_s, options.stream)  # fmt: skip
        try:
            if options.stream and isinstance(poller, XrplPoller):
                await run_stream(poller, stream_url(settings), stop, interval_s)
            else:
                await run_poller(poller, name, stop, interval_s, backoff)
        finally:
            if isinstance(poller, XrplPoller | UtxoPoller):
                await poller.state.release_lock()
        logger.info("poller stopped network=%s", name)


def stream_url(settings: Settings) -> str:
    url = settings.ripple_ws_url or settings.ripple_rpc_url or ""
    if not url.startswith(("ws://", "wss://")):
        raise SettingsError("--stream needs a WebSocket URL: set PAYQ_RIPPLE_WS_URL (ws:// or wss://)")
    return url


async def run_configured_pollers(settings: Settings, store: Store, stop: asyncio.Event) -> None:
    """Run every configured network's poller until ``stop`` (for ``payq dev``)."""
    names = configured_networks(settings)
    if names:
        await asyncio.gather(*(_poll_configured(settings, store, name, stop) for name in names))


async def _poll_configured(settings: Settings, store: Store, name: NetworkName, stop: asyncio.Event) -> None:
    try:
        await poll_network(settings, store, name, PollOptions(), stop)
    except (SettingsError, PollerConfigError) as exc:
        logger.error("poller not started network=%s error=%s", name, exc)
