from __future__ import annotations

from datetime import UTC, datetime

import orjson
import redis

from service.bodies import Observation, parse_body
from service.networks import Chain, Network
from service.recording import Result, record_delivery
from service.send import sample_address
from service.settings import Settings
from workers.codec import encode_job
from workers.connection import Store

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


def payment(txid: str, confirmations: int = 1) -> dict[str, object]:
    return {"txid": txid, "output_index": 0, "address": ADDRESS, "amount": "0.0015", "confirmations": confirmations}


async def test_record_delivery_enqueues_and_stores_answer(store: Store, sync_redis: redis.Redis) -> None:
    seen = observations(payment("aa" * 32), payment("bb" * 32, confirmations=0))

    record = await record_delivery(store, settings(), "msg_1", seen, HEAD, TAIL)

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


async def test_record_delivery_answers_replay_from_stored_answer(store: Store, sync_redis: redis.Redis) -> None:
    seen = observations(payment("aa" * 32))
    first = await record_delivery(store, settings(), "msg_1", seen, HEAD, TAIL)

    again = await record_delivery(store, settings(), "msg_1", seen, HEAD, TAIL)

    assert again.replayed and again.answer == first.answer and again.outcomes == []
    assert sync_redis.llen("resque:queue:bitcoin:incoming") == 1


async def test_record_delivery_reports_payment_from_other_delivery_as_duplicate(
    store: Store, sync_redis: redis.Redis
) -> None:
    seen = observations(payment("aa" * 32))
    await record_delivery(store, settings(), "msg_1", seen, HEAD, TAIL)

    other = await record_delivery(store, settings(), "msg_2", seen, HEAD, TAIL)

    assert not other.replayed
    assert [(o.result, o.reason) for o in other.outcomes] == [(Result.DUPLICATE, "enqueued before")]
    assert orjson.loads(other.answer)["payments"][0]["status"] == "duplicate"
    assert sync_redis.llen("resque:queue:bitcoin:incoming") == 1
