"""The intake under load and failure: concurrent duplicates, Redis going away, replicas that must hold the job."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import orjson
import redis

from service.redis_server import RedisServer
from tests.service.intake_client import TOKEN, TXID, intake_client, intake_settings, post_signed, utxo_body
from tests.waiting import wait_until
from workers.codec import decode_job
from workers.connection import Store


def queued_ids(client: redis.Redis, queue: str = "bitcoin:incoming") -> list[str]:
    ids = []
    for raw in client.lrange(f"resque:queue:{queue}", 0, -1):
        payment = decode_job(raw).args[0]
        assert isinstance(payment, dict)
        ids.append(str(payment["id"]))
    return ids


async def test_post_payments_enqueues_one_job_for_200_concurrent_deliveries(
    store: Store, sync_redis: redis.Redis, redis_url: str
) -> None:
    body = orjson.dumps(utxo_body())
    async with intake_client(intake_settings(redis_url), store) as client:
        signed = [post_signed(client, "bitcoin", body) for _ in range(100)]
        tokened = [client.post(f"/payments/bitcoin?token={TOKEN}", content=body) for _ in range(100)]
        responses = await asyncio.gather(*signed, *tokened)

    assert [r.status_code for r in responses] == [202] * 200
    statuses = [r.json()["payments"][0]["status"] for r in responses]
    assert statuses.count("enqueued") == 1 and statuses.count("duplicate") == 199
    assert queued_ids(sync_redis) == [f"bitcoin:{TXID}:1"]


async def test_post_payments_answers_503_while_redis_is_down_and_loses_no_acknowledged_payment(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis", durable=True)
    server.start()
    store = Store.from_url(server.url)
    acknowledged: list[str] = []
    refused: list[str] = []
    sending = asyncio.Event()  # cleared while the server stops, so that payments are left for it to refuse
    sending.set()

    async def sender(client_post: Callable[[bytes], object], first: int, count: int) -> None:
        for n in range(first, first + count):
            await sending.wait()
            body = orjson.dumps(utxo_body(txid=f"{n:064x}", output_index=0))
            while True:
                response = await client_post(body)  # type: ignore[misc]
                if response.status_code == 202:
                    [outcome] = response.json()["payments"]
                    assert outcome["status"] in ("enqueued", "duplicate")
                    acknowledged.append(outcome["id"])
                    break
                assert response.status_code == 503, response.text
                refused.append(f"bitcoin:{n:064x}:0")
                await asyncio.sleep(0.02)  # a sender's retry back-off

    try:
        async with intake_client(intake_settings(server.url), store) as client:

            async def post(body: bytes) -> object:
                return await client.post(f"/payments/bitcoin?token={TOKEN}", content=body)

            senders = asyncio.gather(*(sender(post, k * 40, 40) for k in range(3)))
            await wait_until(lambda: len(acknowledged) >= 15)
            sending.clear()
            await asyncio.to_thread(server.stop)
            sending.set()
            await wait_until(lambda: len(refused) >= 10)
            await asyncio.to_thread(server.start)
            await senders
        with redis.Redis.from_url(server.url) as check:
            in_redis = queued_ids(check)
    finally:
        await store.close()
        server.stop()

    assert len(refused) >= 10
    assert sorted(set(acknowledged)) == sorted(f"bitcoin:{n:064x}:0" for n in range(120))
    assert sorted(in_redis) == sorted(set(acknowledged))  # every acknowledged payment, each exactly once


async def test_post_payments_waits_for_redis_replicas(tmp_path: Path) -> None:
    primary = RedisServer(tmp_path / "primary", durable=False)
    primary.start()
    replica = RedisServer(tmp_path / "replica", durable=False, extra=("--replicaof", "127.0.0.1", str(primary.port)))
    replica.start()
    store = Store.from_url(primary.url)
    try:
        with redis.Redis.from_url(replica.url) as replica_client:
            await wait_until(lambda: replica_client.info("replication")["master_link_status"] == "up")
            one = intake_settings(primary.url, redis_wait_replicas=1)
            two = intake_settings(primary.url, redis_wait_replicas=2, redis_wait_timeout_ms=200)
            async with intake_client(one, store) as client:
                held = await post_signed(client, "bitcoin", orjson.dumps(utxo_body(output_index=1)))
            # Replication is acknowledged before the answer, so the replica holds the job already.
            on_replica = queued_ids(replica_client)
            async with intake_client(two, store) as client:
                short = await post_signed(client, "bitcoin", orjson.dumps(utxo_body(output_index=2)))
                # The sender retries: the job is a duplicate now, yet it is still held to the replicas.
                retried_short = await post_signed(client, "bitcoin", orjson.dumps(utxo_body(output_index=2)))
            async with intake_client(one, store) as client:
                retried = await post_signed(client, "bitcoin", orjson.dumps(utxo_body(output_index=2)))
    finally:
        await store.close()
        replica.stop()
        primary.stop()

    assert held.status_code == 202 and held.json()["payments"][0]["status"] == "enqueued"
    assert on_replica == [f"bitcoin:{TXID}:1"]
    assert short.status_code == 503
    assert short.json()["message"] == "1 of 2 Redis replicas acknowledged the jobs"
    assert retried_short.status_code == 503
    assert retried.status_code == 202 and retried.json()["payments"][0]["status"] == "duplicate"
