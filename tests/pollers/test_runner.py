"""Running pollers: the loop survives failures with backoff, settings build them, payq dev runs the configured ones."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis
import respx

from pollers.backoff import Backoff
from pollers.errors import LockLost, RpcUnavailable
from pollers.runner import (
    PollOptions,
    configured_networks,
    open_poller,
    run_configured_pollers,
    run_poller,
    stream_url,
)
from pollers.utxo import PollReport, UtxoPoller
from pollers.xrpl import XrplPoller
from service.cli import build_parser
from service.settings import Settings, SettingsError
from tests.pollers.conftest import BTC_ADDRESS, job_ids, poller_settings, route_node
from tests.pollers.core_node import CoreNode, txid
from workers.connection import Store


class ScriptedPoller:
    """Fails as told, then stops the loop."""

    def __init__(self, failures: list[Exception], stop: asyncio.Event) -> None:
        self.failures = failures
        self.stop = stop
        self.calls = 0

    async def poll_once(self) -> PollReport:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.stop.set()
        return PollReport()


async def test_run_poller_keeps_going_after_failures(caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()
    failures: list[Exception] = [RpcUnavailable("HTTP 503"), ValueError("bug"), LockLost("held"), RpcUnavailable("x")]
    poller = ScriptedPoller(failures, stop)
    backoff = Backoff(base_s=0.001, max_s=0.002)

    await asyncio.wait_for(run_poller(poller, "bitcoin", stop, 0.001, backoff), timeout=10)

    assert poller.calls == 5
    assert "poll failed network=bitcoin failures=1" in caplog.text
    assert "poll failed unexpectedly network=bitcoin failures=2" in caplog.text
    assert "poll failed network=bitcoin failures=3" in caplog.text


async def test_open_poller_builds_each_network_from_settings(store: Store, redis_url: str) -> None:
    settings = poller_settings(
        redis_url, ripple_rpc_url="http://rippled.test:5005/", ripple_addresses="rfdGuuVnq9juqWDV4W3LoLiNcW8g2hAXhN"
    )

    async with open_poller(settings, store, "bitcoin", PollOptions()) as bitcoin:
        assert isinstance(bitcoin, UtxoPoller) and bitcoin.config.required == 1
    async with open_poller(settings, store, "dogecoin", PollOptions(since="100")) as dogecoin:
        assert isinstance(dogecoin, UtxoPoller) and dogecoin.config.required == 3 and dogecoin.config.since == "100"
    async with open_poller(settings, store, "ripple", PollOptions(since="1969800")) as ripple:
        assert isinstance(ripple, XrplPoller) and ripple.config.since == 1969800
    assert configured_networks(settings) == ["bitcoin", "dogecoin", "ripple"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bitcoin_rpc_url": None}, "PAYQ_BITCOIN_RPC_URL is not set"),
        ({"bitcoin_addresses": ""}, "PAYQ_BITCOIN_ADDRESSES is empty"),
    ],
)
async def test_open_poller_refuses_incomplete_settings(
    store: Store, redis_url: str, overrides: dict[str, object], message: str
) -> None:
    settings = poller_settings(redis_url, **overrides)

    with pytest.raises(SettingsError, match=message):
        async with open_poller(settings, store, "bitcoin", PollOptions()):
            pass


def test_stream_url_needs_websocket(redis_url: str) -> None:
    assert stream_url(poller_settings(redis_url, ripple_ws_url="wss://xrpl.test/")) == "wss://xrpl.test/"
    with pytest.raises(SettingsError, match="PAYQ_RIPPLE_WS_URL"):
        stream_url(poller_settings(redis_url, ripple_rpc_url="http://rippled.test:5005/"))


async def test_run_configured_pollers_polls_and_stops(
    mock_core: respx.MockRouter, store: Store, redis_url: str, sync_redis: redis.Redis
) -> None:
    node = CoreNode()
    node.receive(txid(1), BTC_ADDRESS, "0.25")
    node.mine(txid(1))
    route_node(mock_core, node)
    settings = poller_settings(redis_url, dogecoin_rpc_url=None, poller_interval_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(run_configured_pollers(settings, store, stop))

    async with asyncio.timeout(10):
        while not job_ids(sync_redis, "bitcoin:incoming"):
            await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, timeout=10)

    assert job_ids(sync_redis, "bitcoin:incoming") == [f"bitcoin:{txid(1)}:0"]
    assert not sync_redis.exists("resque:payq:poller:bitcoin:lock")  # released on a clean stop


async def test_run_configured_pollers_logs_bad_settings_instead_of_failing(
    store: Store, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = poller_settings(redis_url, dogecoin_rpc_url="ftp://node", bitcoin_rpc_url=None)
    caplog.set_level(logging.ERROR)

    await asyncio.wait_for(run_configured_pollers(settings, store, asyncio.Event()), timeout=10)

    assert "poller not started network=dogecoin" in caplog.text


def test_parse_poll_command_options() -> None:
    args = build_parser().parse_args(["poll", "ripple", "--interval", "2.5", "--since", "1969800", "--stream"])

    assert (args.network, args.interval, args.since, args.stream) == ("ripple", 2.5, "1969800", True)


def test_settings_poller_interval_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYQ_POLLER_INTERVAL_S", "7.5")
    monkeypatch.setenv("PAYQ_DOGECOIN_REVERSAL_JOB_CLASS", "UndoPayment")

    settings = Settings()

    assert settings.poller_interval_s == 7.5 and settings.dogecoin_reversal_job_class == "UndoPayment"
