"""The Core JSON-RPC client: both error shapes, auth and cookies, warm-up, rate limits, exact amounts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import respx

from pollers.backoff import Backoff
from pollers.errors import RpcAuthError, RpcError, RpcProtocolError, RpcUnavailable, RpcWarmingUp
from pollers.rpc import CoreRpc, redact_url
from tests.pollers.conftest import FAST
from tests.pollers.core_node import URL, legacy_error, v2_error

# FIXTURE BTC-LSB-1 (reference/payment-sources.md §1), the 63-digit help-text txid padded to 64.
BTC_LSB_1 = """{"result":{"transactions":[
 {"address":"bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq","category":"receive","amount":0.00150000,"label":"inv-42",
  "vout":1,"abandoned":false,"confirmations":3,
  "blockhash":"000000000000000bacf66f7497b7dc45ef753ee9a7d38571037cdb1a57f663ad","blockheight":850000,"blockindex":12,
  "blocktime":1718000000,"txid":"01075db55d416d3ca199f55b6084e2115b9345e16c5cf302fc80e9d5fbf5d48d",
  "wtxid":"01075db55d416d3ca199f55b6084e2115b9345e16c5cf302fc80e9d5fbf5d48d","walletconflicts":[],"mempoolconflicts":[],
  "time":1717999990,"timereceived":1717999990,"bip125-replaceable":"no"}],
 "removed":[],"lastblock":"0000000000000000000223b0f94c0a8b7bf2b56fb84b77e4a1a5f0f3cd1a0c11"},
 "error":null,"id":"poll-1"}"""


@pytest.fixture
async def rpc() -> AsyncIterator[CoreRpc]:
    client = CoreRpc("http://alice:s3cret@core.test:8332/", backoff=FAST, timeout_s=2.0)
    yield client
    await client.aclose()


async def test_call_core_parses_amounts_exactly(mock_core: respx.MockRouter, rpc: CoreRpc) -> None:
    mock_core.post(URL).mock(return_value=httpx.Response(200, text=BTC_LSB_1))

    result = await rpc.call("listsinceblock", "", 1, True)

    amount = result["transactions"][0]["amount"]
    assert isinstance(amount, Decimal) and amount == Decimal("0.0015")


async def test_call_core_sends_basic_auth_from_url_and_legacy_request(
    mock_core: respx.MockRouter, rpc: CoreRpc
) -> None:
    route = mock_core.post(URL).mock(return_value=httpx.Response(200, json={"result": 7, "error": None, "id": 1}))

    assert await rpc.call("getblockcount") == 7

    request = route.calls.last.request
    assert request.headers["authorization"] == httpx.BasicAuth("alice", "s3cret")._auth_header
    body = json.loads(request.content)
    assert body["method"] == "getblockcount" and body["params"] == [] and body["jsonrpc"] == "1.0"
    assert "alice" not in str(request.url) and rpc.display_url == "http://core.test:8332/"


@pytest.mark.parametrize("reply", [legacy_error(-5, "Block not found"), v2_error(-5, "Block not found")])
async def test_call_core_raises_rpc_error_in_both_shapes(
    mock_core: respx.MockRouter, rpc: CoreRpc, reply: httpx.Response
) -> None:
    route = mock_core.post(URL).mock(return_value=reply)

    with pytest.raises(RpcError) as caught:
        await rpc.call("listsinceblock", "00" * 32)

    assert (caught.value.code, caught.value.message) == (-5, "Block not found")
    assert route.call_count == 1  # not retried


async def test_call_core_retries_warmup_then_succeeds(mock_core: respx.MockRouter, rpc: CoreRpc) -> None:
    route = mock_core.post(URL).mock(
        side_effect=[
            legacy_error(-28, "Loading block index..."),
            httpx.Response(200, json={"result": "ok", "error": None, "id": 1}),
        ]
    )

    assert await rpc.call("getblockchaininfo") == "ok"
    assert route.call_count == 2


async def test_call_core_gives_up_on_warmup_after_bounded_attempts(mock_core: respx.MockRouter, rpc: CoreRpc) -> None:
    route = mock_core.post(URL).mock(return_value=legacy_error(-28, "Verifying blocks..."))

    with pytest.raises(RpcWarmingUp):
        await rpc.call("getblockchaininfo")
    assert route.call_count == FAST.attempts


@pytest.mark.parametrize("status", [429, 503])
async def test_call_core_retries_rate_limit_replies(mock_core: respx.MockRouter, rpc: CoreRpc, status: int) -> None:
    route = mock_core.post(URL).mock(
        side_effect=[
            httpx.Response(status, text="Service Unavailable", headers={"retry-after": "0"}),
            httpx.Response(200, json={"result": 1, "error": None, "id": 1}),
        ]
    )

    assert await rpc.call("getblockcount") == 1
    assert route.call_count == 2


async def test_call_core_raises_unavailable_on_timeouts_after_retries(
    mock_core: respx.MockRouter, rpc: CoreRpc
) -> None:
    route = mock_core.post(URL).mock(side_effect=httpx.ReadTimeout("slow node"))

    with pytest.raises(RpcUnavailable, match="timed out"):
        await rpc.call("getblockcount")
    assert route.call_count == FAST.attempts


async def test_call_core_raises_unavailable_on_connection_errors(mock_core: respx.MockRouter, rpc: CoreRpc) -> None:
    mock_core.post(URL).mock(side_effect=httpx.ConnectError("refused"))

    with pytest.raises(RpcUnavailable, match=r"could not reach http://core\.test:8332/"):
        await rpc.call("getblockcount")


async def test_call_core_401_without_cookie_is_auth_error(mock_core: respx.MockRouter, rpc: CoreRpc) -> None:
    route = mock_core.post(URL).mock(return_value=httpx.Response(401))

    with pytest.raises(RpcAuthError) as caught:
        await rpc.call("getblockcount")

    assert "s3cret" not in str(caught.value)
    assert route.call_count == 1


async def test_call_core_rereads_cookie_on_401(mock_core: respx.MockRouter, tmp_path: Path) -> None:
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:" + "aa" * 32)
    fresh = httpx.BasicAuth("__cookie__", "bb" * 32)._auth_header

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] != fresh:
            return httpx.Response(401)
        return httpx.Response(200, json={"result": "ok", "error": None, "id": 1})

    route = mock_core.post(URL).mock(side_effect=answer)
    rpc = CoreRpc(URL, cookie_file=cookie, backoff=FAST)
    try:
        with pytest.raises(RpcAuthError):
            await rpc.call("getblockcount")
        cookie.write_text("__cookie__:" + "bb" * 32 + "\n")  # the node restarted

        assert await rpc.call("getblockcount") == "ok"
    finally:
        await rpc.aclose()
    assert route.call_count == 4  # each call: the stale cookie, then the one read again


async def test_call_core_rejects_non_json_reply(mock_core: respx.MockRouter, rpc: CoreRpc) -> None:
    mock_core.post(URL).mock(return_value=httpx.Response(200, text="<html>proxy</html>"))

    with pytest.raises(RpcProtocolError):
        await rpc.call("getblockcount")


def test_redact_url_drops_credentials() -> None:
    assert redact_url("http://u:p@node:8332/wallet/w?x=1") == "http://node:8332/wallet/w"


def test_backoff_delay_grows_and_stays_bounded() -> None:
    backoff = Backoff(base_s=1.0, max_s=8.0)

    assert [backoff.delay_s(n, rng=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff.delay_s(3, rng=lambda: 0.25) == 1.0
