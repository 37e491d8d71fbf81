"""Recording webhook deliveries in one step each, and concurrent deliveries in one script call."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest
import redis

from service.bodies import Observation, Status, parse_body
from service.deliveries import DeliveryRecord, DeliveryRecorder
from service.networks import Chain, Network
from service.recording import Result
from service.send import sample_address
from service.settings import Settings
from workers.codec import encode_job
from workers.connection import Store
from workers.pipe import ScriptPipe

ADDRESS = sample_address(Network.BITCOIN, Chain.MAIN)
HEAD, TAIL = b'{"request_id":"r1","payments":[', b"]}"


def settings() -> Settings:
    return Settings.model_construct(**{**Settings().model_dump(), "bitcoin_addresses": frozenset({ADDRESS})})


def observations(*payments: dict[str, object]) -> list[Observation]:
    return parse_body(
        Network.BITCOIN,
        Chain.MAIN,
        list(payments),
        frozenset({ADDRESS}),
        source="webhook",
        received_at=datetime(2026, 12, 3, 15, 40, 37, tzinfo=UTC),
        request_id="r1",
    )


async def record_one(store: Store, webhook_id: str | None, seen: list[Observation]) -> DeliveryRecord:
    return await DeliveryRecorder(store, settings()).record(webhook_id, seen, HEAD, TAIL)


def script_calls(sync_redis: redis.Redis) -> int:
    stats = sync_redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("eval", "evalsha"))


def payment(txid: str, confirmations: int = 1) -> dict[str, object]:
    return {"txid": txid, "output_index": 0, "address": ADDRESS, "amount": "0.0015", "confirmations": confirmations}


async def test_delivery_enqueues_and_stores_answer(store: Store, sync_redis: redis.Redis) -> None:
    seen = observations(payment("aa" * 32), payment("bb" * 32, confirmations=0))

    record = await record_one(store, "msg_1", seen)

    assert not record.replayed
    assert [o.result for o in record.outcomes] == [Result.ENQUEUED, Result.PENDING]
    confirmed = seen[0].payment
    assert confirmed is not None
    expected_job = encode_job("bitcoin:incoming", "log", [{**confirmed.to_job_arg()}])
    assert sync_redis.lrange("resque:queue:bitcoin:incoming", 0, -1) == [expected_job]
    assert sync_redis.smembers("resque:queues") == {b"bitcoin:incoming"}
    assert sync_redis.get(f"resque:payq:unique:{confirmed.id}") == expected_job
    assert sync_redis.get("resque:payq:delivery:msg_1") == record.answer
    answer = orjson.loads(record.answer)
    assert [p["status"] for p in answer["payments"]] == ["enqueued", "pending"]
    assert answer["payments"][0] == {
        "id": confirmed.id,
        "status": "enqueued",
        "confirmations": 1,
        "queue": "bitcoin:incoming",
    }


async def test_delivery_answers_replay_from_stored_answer(store: Store, sync_redis: redis.Redis) -> None:
    seen = observations(payment("aa" * 32))
    first = await record_one(store, "msg_1", seen)

    again = await record_one(store, "msg_1", seen)

    assert again.replayed and again.answer == first.answer and again.outcomes == []
    assert sync_redis.llen("resque:queue:bitcoin:incoming") == 1


async def test_delivery_reports_payment_from_other_delivery_as_duplicate(store: Store, sync_redis: redis.Redis) -> None:
    seen = observations(payment("aa" * 32))
    await record_one(store, "msg_1", seen)

    other = await record_one(store, "msg_2", seen)

    assert not other.replayed
    assert [(o.result, o.reason) for o in other.outcomes] == [(Result.DUPLICATE, "enqueued before")]
    assert orjson.loads(other.answer)["payments"][0]["status"] == "duplicate"
    assert sync_redis.llen("resque:queue:bitcoin:incoming") == 1


async def test_unsigned_delivery_enqueues_without_storing_an_answer(store: Store, sync_redis: redis.Redis) -> None:
    seen = observations(payment("aa" * 32))

    first = await record_one(store, None, seen)
    again = await record_one(store, None, seen)

    assert not first.replayed and not again.replayed
    assert [o.result for o in (*first.outcomes, *again.outcomes)] == [Result.ENQUEUED, Result.DUPLICATE]
    assert sync_redis.keys("resque:payq:delivery:*") == []
    assert sync_redis.llen("resque:queue:bitcoin:incoming") == 1


def recorder_via(store: Store, via: str) -> DeliveryRecorder:
    """A recorder on its own pipelined connection, or on the shared client (TLS, Sentinel, Cluster)."""
    shared = via == "shared client"
    recorder = DeliveryRecorder(Store(store.redis, store.keys, pipes=False) if shared else store, settings())
    assert isinstance(getattr(recorder._call, "__self__", None), ScriptPipe) != shared
    return recorder


@pytest.mark.parametrize("via", ["pipe", "shared client"])
async def test_concurrent_deliveries_share_one_script_call(store: Store, sync_redis: redis.Redis, via: str) -> None:
    recorder = recorder_via(store, via)
    await recorder.record("msg_warm", observations(payment("ff" * 32)), HEAD, TAIL)  # loads the script
    before = script_calls(sync_redis)
    distinct = [observations(payment(f"{i:064x}")) for i in range(30)]

    records = await asyncio.gather(
        *(recorder.record(f"msg_{i}", seen, HEAD, TAIL) for i, seen in enumerate(distinct)),
        recorder.record("msg_0", distinct[0], HEAD, TAIL),  # the same delivery again, in the same batch
        recorder.record("msg_other", distinct[1], HEAD, TAIL),  # another delivery of a payment in the batch
    )

    assert script_calls(sync_redis) - before == 1
    assert [r.outcomes[0].result for r in records[:30]] == [Result.ENQUEUED] * 30
    replay, other = records[30], records[31]
    assert replay.replayed and replay.answer == records[0].answer
    assert [o.result for o in other.outcomes] == [Result.DUPLICATE]
    assert sync_redis.llen("resque:queue:bitcoin:incoming") == 31
    for i, stored in enumerate(records[:30]):
        assert sync_redis.get(f"resque:payq:delivery:msg_{i}") == stored.answer


@pytest.mark.parametrize("via", ["pipe", "shared client"])
async def test_failed_script_call_fails_every_delivery_of_the_batch(
    store: Store, sync_redis: redis.Redis, via: str
) -> None:
    recorder = recorder_via(store, via)
    sync_redis.set("resque:queue:bitcoin:incoming", "not a list")  # every RPUSH in the batch now fails

    results = await asyncio.gather(
        *(recorder.record(f"msg_{i}", observations(payment(f"{i:064x}")), HEAD, TAIL) for i in range(3)),
        return_exceptions=True,
    )

    assert all(isinstance(r, redis.exceptions.ResponseError) for r in results)
    sync_redis.delete("resque:queue:bitcoin:incoming")
    retried = [await recorder.record(f"msg_{i}", observations(payment(f"{i:064x}")), HEAD, TAIL) for i in range(3)]
    assert [r.outcomes[0].result for r in retried] == [Result.ENQUEUED] * 3
    assert sync_redis.llen("resque:queue:bitcoin:incoming") == 3


async def test_answer_keeps_every_character_of_the_outcomes(store: Store, sync_redis: redis.Redis) -> None:
    reason = 'memo "é" \\ \u2028 \x01 ✓'
    seen = [Observation(Status.REJECTED, "bitcoin:ref-ü", reason=reason), *observations(payment("aa" * 32))]

    record = await record_one(store, "msg_1", seen)

    answer = orjson.loads(record.answer)
    assert answer["payments"][0] == {"id": "bitcoin:ref-ü", "status": "rejected", "reason": reason}
    assert sync_redis.get("resque:payq:delivery:msg_1") == record.answer
    [job] = sync_redis.lrange("resque:queue:bitcoin:incoming", 0, -1)
    assert sync_redis.get(f"resque:payq:unique:{seen[1].payment.id}") == job  # type: ignore[union-attr]
