"""The Bitcoin / Dogecoin poller against a fake Core wallet: history, resume, confirmations, reorgs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import redis
import respx

from pollers.errors import RpcError
from service.networks import Network
from tests.pollers.conftest import BTC_ADDRESS, BTC_OTHER, DOGE_ADDRESS, UtxoFactory, cursor, job_ids, jobs, route_node
from tests.pollers.core_node import CoreNode, block_hash, txid


def lsb_params(node: CoreNode) -> list[list[Any]]:
    return [params for method, params in node.calls if method == "listsinceblock"]


async def test_poll_bitcoin_first_run_reads_full_history(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, sync_redis: redis.Redis
) -> None:
    node = CoreNode(blocks=5)
    node.receive(txid(1), BTC_ADDRESS, "0.00150000", vout=1)
    node.receive(txid(1), BTC_OTHER, "1.00000000", vout=0)  # change or someone else's output
    node.mine(txid(1))
    node.receive(txid(2), BTC_ADDRESS, "0.00020000")  # unconfirmed
    route_node(mock_core, node)

    report = await make_utxo_poller(Network.BITCOIN).poll_once()

    assert lsb_params(node) == [["", 1, True]]
    assert report.found == 2 and report.enqueued == 1
    [job] = jobs(sync_redis, "bitcoin:incoming")
    assert job["class"] == "log"
    assert job["args"][0] | {"received_at": "-"} == {
        "id": f"bitcoin:{txid(1)}:1", "network": "bitcoin", "txid": txid(1), "output_index": 1,
        "address": BTC_ADDRESS, "amount": "0.00150000", "currency": "BTC", "minor_units": 150000,
        "confirmations": 1, "source": "poller", "received_at": "-",
    }  # fmt: skip
    assert cursor(sync_redis, "bitcoin") == {"block": node.chain[-1], "height": 5}


async def test_poll_bitcoin_resumes_from_cursor_after_restart(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, sync_redis: redis.Redis
) -> None:
    node = CoreNode()
    node.receive(txid(1), BTC_ADDRESS, "0.1")
    node.mine(txid(1))
    route_node(mock_core, node)
    first = make_utxo_poller(Network.BITCOIN)
    await first.poll_once()
    await first.state.release_lock()  # a clean stop
    tip = node.chain[-1]
    node.receive(txid(2), BTC_ADDRESS, "0.2")
    node.mine(txid(2))

    await make_utxo_poller(Network.BITCOIN).poll_once()

    assert lsb_params(node)[-1] == [tip, 1, True]
    assert job_ids(sync_redis, "bitcoin:incoming") == [f"bitcoin:{txid(1)}:0", f"bitcoin:{txid(2)}:0"]


async def test_poll_bitcoin_since_height_starts_there(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, sync_redis: redis.Redis
) -> None:
    node = CoreNode(blocks=10)
    route_node(mock_core, node)

    await make_utxo_poller(Network.BITCOIN, since="7").poll_once()

    assert lsb_params(node) == [[node.chain[7], 1, True]]


async def test_poll_dogecoin_enqueues_when_confirmations_cross_threshold(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, sync_redis: redis.Redis
) -> None:
    node = CoreNode(dogecoin=True)
    node.receive(txid(7), DOGE_ADDRESS, "250")
    node.mine(txid(7))
    route_node(mock_core, node)
    poller = make_utxo_poller(Network.DOGECOIN)  # needs 3 confirmations

    await poller.poll_once()
    node.mine()
    await poller.poll_once()
    assert jobs(sync_redis, "dogecoin:incoming") == []
    node.mine()
    await poller.poll_once()
    node.mine()
    await poller.poll_once()

    [job] = jobs(sync_redis, "dogecoin:incoming")
    assert job["args"][0]["confirmations"] == 3
    assert job["args"][0]["amount"] == "250.00000000"
    assert job["args"][0]["minor_units"] == 25_000_000_000


async def test_poll_logs_one_line_per_payment_found(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    node = CoreNode(dogecoin=True)
    node.receive(txid(7), DOGE_ADDRESS, "250")
    node.mine(txid(7))
    route_node(mock_core, node)
    poller = make_utxo_poller(Network.DOGECOIN)
    caplog.set_level(logging.INFO, logger="pollers")

    for _ in range(3):
        await poller.poll_once()
        node.mine()
    await poller.poll_once()

    found = [r.getMessage() for r in caplog.records if r.getMessage().startswith("payment found")]
    assert len(found) == 2
    assert "confirmations=1 required=3 enqueued=not-yet" in found[0]
    assert f"id=dogecoin:{txid(7)}:0" in found[1] and "enqueued=yes" in found[1]


async def test_poll_bitcoin_reorg_removed_entry_produces_reversal(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, sync_redis: redis.Redis
) -> None:
    node = CoreNode()
    node.receive(txid(1), BTC_ADDRESS, "0.5")
    node.mine(txid(1))
    route_node(mock_core, node)
    poller = make_utxo_poller(Network.BITCOIN)
    await poller.poll_once()
    assert job_ids(sync_redis, "bitcoin:incoming") == [f"bitcoin:{txid(1)}:0"]

    node.reorg(1)
    node.wallet[txid(1)].conflicted = True  # double-spent on the winning branch
    node.mine(label="b3-other")
    node.mine(label="b4-other")
    await poller.poll_once()
    await poller.poll_once()

    [reversal] = jobs(sync_redis, "bitcoin:reversed")
    assert reversal["class"] == "log" and reversal["queue"] == "bitcoin:reversed"
    assert reversal["args"][0]["id"] == f"bitcoin:{txid(1)}:0"
    assert [p[0] for p in lsb_params(node)][1] == block_hash("b3")  # asked from the stale cursor
    assert sync_redis.exists(f"resque:payq:unique:bitcoin:{txid(1)}:0") == 0
    assert sync_redis.sismember("resque:queues", "bitcoin:reversed")


async def test_poll_bitcoin_reorg_of_unenqueued_payment_reverses_nothing(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, sync_redis: redis.Redis, settings: Any
) -> None:
    node = CoreNode()
    node.receive(txid(1), BTC_ADDRESS, "0.5")
    route_node(mock_core, node)
    poller = make_utxo_poller(Network.BITCOIN)
    await poller.poll_once()  # 0 confirmations: seen, not enqueued
    del node.wallet[txid(1)]  # evicted and forgotten

    await poller.poll_once()

    assert jobs(sync_redis, "bitcoin:reversed") == []
    assert sync_redis.hlen("resque:payq:poller:bitcoin:tracked") == 0


async def test_poll_dogecoin_recheck_finds_vanished_payment_and_reverses_once(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, sync_redis: redis.Redis
) -> None:
    node = CoreNode(dogecoin=True, blocks=5)
    node.receive(txid(3), DOGE_ADDRESS, "42")
    node.mine(txid(3))
    node.mine()
    node.mine()
    route_node(mock_core, node)
    poller = make_utxo_poller(Network.DOGECOIN)
    await poller.poll_once()
    assert job_ids(sync_redis, "dogecoin:incoming") == [f"dogecoin:{txid(3)}:0"]

    node.reorg(3)
    del node.wallet[txid(3)]  # gettransaction now answers -5
    for label in ("x5", "x6", "x7", "x8"):
        node.mine(label=label)
    await poller.poll_once()
    await poller.poll_once()

    assert job_ids(sync_redis, "dogecoin:reversed") == [f"dogecoin:{txid(3)}:0"]
    assert "gettransaction" in node.methods()
    assert all("removed" not in str(p) for p in lsb_params(node))


async def test_poll_dogecoin_payment_back_in_mempool_is_reversed_then_enqueued_again_when_remined(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, sync_redis: redis.Redis
) -> None:
    node = CoreNode(dogecoin=True)
    node.receive(txid(4), DOGE_ADDRESS, "10")
    node.mine(txid(4))
    node.mine()
    node.mine()
    route_node(mock_core, node)
    poller = make_utxo_poller(Network.DOGECOIN)
    await poller.poll_once()

    node.reorg(3)  # the block holding it is gone; it waits in the mempool
    await poller.poll_once()
    assert job_ids(sync_redis, "dogecoin:reversed") == [f"dogecoin:{txid(4)}:0"]
    node.mine(txid(4), label="again")
    node.mine(label="again2")
    node.mine(label="again3")
    await poller.poll_once()
    await poller.poll_once()

    assert job_ids(sync_redis, "dogecoin:incoming") == [f"dogecoin:{txid(4)}:0"] * 2
    assert job_ids(sync_redis, "dogecoin:reversed") == [f"dogecoin:{txid(4)}:0"]


async def test_poll_dogecoin_unknown_cursor_rescans_from_stored_height(
    mock_core: respx.MockRouter,
    make_utxo_poller: UtxoFactory,
    sync_redis: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = CoreNode(dogecoin=True, blocks=30)
    route_node(mock_core, node)
    unknown = block_hash("from-a-resynced-node")
    sync_redis.set("resque:payq:cursor:dogecoin", json.dumps({"block": unknown, "height": 25}))

    await make_utxo_poller(Network.DOGECOIN).poll_once()

    # 25 less (3 required + 6 reorg depth): never the unknown hash, whose answer would be the whole history
    assert lsb_params(node) == [[node.chain[16], 3, True]]
    assert "cursor block unknown to the node, rescanning" in caplog.text
    assert cursor(sync_redis, "dogecoin") == {"block": node.chain[27], "height": 27}


async def test_poll_dogecoin_unknown_cursor_without_height_reads_full_history(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory, sync_redis: redis.Redis
) -> None:
    node = CoreNode(dogecoin=True)
    node.receive(txid(5), DOGE_ADDRESS, "1")
    node.mine(txid(5))
    node.mine()
    node.mine()
    route_node(mock_core, node)
    sync_redis.set("resque:payq:cursor:dogecoin", json.dumps({"block": block_hash("nowhere")}))

    await make_utxo_poller(Network.DOGECOIN).poll_once()

    assert lsb_params(node) == [["", 3, True]]
    assert job_ids(sync_redis, "dogecoin:incoming") == [f"dogecoin:{txid(5)}:0"]


async def test_poll_bitcoin_block_not_found_on_since_raises(
    mock_core: respx.MockRouter, make_utxo_poller: UtxoFactory
) -> None:
    route_node(mock_core, CoreNode())

    with pytest.raises(RpcError) as caught:
        await make_utxo_poller(Network.BITCOIN, since=block_hash("nope")).poll_once()

    assert caught.value.code == -5


async def test_poll_skips_malformed_entry_and_keeps_going(
    mock_core: respx.MockRouter,
    make_utxo_poller: UtxoFactory,
    sync_redis: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = CoreNode()
    node.receive(txid(1), BTC_ADDRESS, "0.000000001")  # finer than a satoshi
    node.receive(txid(2), BTC_ADDRESS, "0.3")
    node.mine(txid(1), txid(2))
    route_node(mock_core, node)

    await make_utxo_poller(Network.BITCOIN).poll_once()

    assert job_ids(sync_redis, "bitcoin:incoming") == [f"bitcoin:{txid(2)}:0"]
    assert "wallet entry skipped" in caplog.text
