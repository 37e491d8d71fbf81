"""Fixtures for the poller tests: settings, a fake Core node behind respx, and poller factories."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
import respx
from xrpl.asyncio.clients import AsyncJsonRpcClient

from pollers.backoff import Backoff
from pollers.cursor import PollerState
from pollers.record import PaymentSink
from pollers.rpc import CoreRpc
from pollers.utxo import UtxoConfig, UtxoPoller
from pollers.xrpl import XrplConfig, XrplPoller
from service.networks import Chain, Network
from service.settings import Settings
from tests.pollers.core_node import URL, CoreNode
from tests.pollers.rippled import RPC_URL, WATCHED, Rippled
from workers.connection import Store

BTC_ADDRESS = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
BTC_OTHER = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"
DOGE_ADDRESS = "DH9fPpKHLiP5eaAD3pXxxUZmPktGNGTFp6"
FAST = Backoff(base_s=0.001, max_s=0.002, attempts=3)


def poller_settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "bitcoin_rpc_url": URL,
        "bitcoin_addresses": BTC_ADDRESS,
        "dogecoin_rpc_url": URL,
        "dogecoin_addresses": DOGE_ADDRESS,
        "dogecoin_confirmations": 3,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return poller_settings(redis_url)


@pytest.fixture
def mock_core() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


UtxoFactory = Callable[..., UtxoPoller]


@pytest.fixture
async def make_utxo_poller(store: Store, settings: Settings) -> AsyncIterator[UtxoFactory]:
    """Build pollers the way ``payq poll`` does, with fast retries; closes their clients afterwards."""
    rpcs: list[CoreRpc] = []

    def make(network: Network, *, since: str | None = None, lock_ttl_ms: int = 30_000, **kw: Any) -> UtxoPoller:
        net = settings.network(network.value)
        rpc = CoreRpc(kw.pop("url", URL), backoff=FAST, timeout_s=2.0, **kw)
        rpcs.append(rpc)
        config = UtxoConfig(network, Chain(net.chain), net.addresses, required=net.confirmations, since=since)
        state = PollerState(store, network.value, lock_ttl_ms=lock_ttl_ms)
        return UtxoPoller(config, rpc, state, PaymentSink(store, settings, network.value))

    yield make
    for rpc in rpcs:
        await rpc.aclose()


def route_node(router: respx.MockRouter, node: CoreNode) -> None:
    router.post(URL).mock(side_effect=node.handle)


def jobs(sync_redis: redis.Redis, queue: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in sync_redis.lrange(f"resque:queue:{queue}", 0, -1)]


def job_ids(sync_redis: redis.Redis, queue: str) -> list[str]:
    return [job["args"][0]["id"] for job in jobs(sync_redis, queue)]


def cursor(sync_redis: redis.Redis, network: str) -> dict[str, Any] | None:
    raw = sync_redis.get(f"resque:payq:cursor:{network}")
    return None if raw is None else dict(json.loads(raw))


XrplFactory = Callable[..., XrplPoller]


@pytest.fixture
def xrpl_settings(redis_url: str) -> Settings:
    return poller_settings(redis_url, ripple_rpc_url=RPC_URL, ripple_addresses=WATCHED)


@pytest.fixture
def rippled() -> Iterator[Rippled]:
    server = Rippled()
    with respx.mock(assert_all_called=False) as router:
        router.post(RPC_URL).mock(side_effect=server.handle)
        yield server


@pytest.fixture
def make_xrpl_poller(store: Store, xrpl_settings: Settings) -> XrplFactory:
    def make(*, since: int | None = None, lock_ttl_ms: int = 30_000) -> XrplPoller:
        config = XrplConfig(Chain.MAIN, frozenset({WATCHED}), since=since)
        state = PollerState(store, "ripple", lock_ttl_ms=lock_ttl_ms)
        sink = PaymentSink(store, xrpl_settings, "ripple")
        return XrplPoller(config, AsyncJsonRpcClient(RPC_URL), state, sink, backoff=FAST)

    return make


def ripple_cursor(sync_redis: redis.Redis) -> Any:
    raw = sync_redis.get(f"resque:payq:cursor:ripple:{WATCHED}")
    return None if raw is None else json.loads(raw)
