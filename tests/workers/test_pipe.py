"""The finish-and-claim script's own pipelined connection: replies in order, and a connection that
recovers from whatever takes it away."""

from __future__ import annotations

import asyncio

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tests.waiting import wait_until
from workers.connection import Store
from workers.pipe import ScriptPipe

ECHO = "redis.call('RPUSH', KEYS[1], ARGV[1]) return {ARGV[1], redis.call('LLEN', KEYS[1])}"


@pytest.fixture
async def pipe(store: Store) -> ScriptPipe:
    script_pipe = store.pipe(ECHO)
    assert script_pipe is not None
    return script_pipe


def pipe_client_count(sync_redis: redis.Redis) -> int:
    return sum(1 for client in sync_redis.client_list() if client["cmd"] in ("evalsha", "script|load"))


async def test_calls_made_together_travel_on_one_connection_and_get_their_own_replies(
    pipe: ScriptPipe, sync_redis: redis.Redis
) -> None:
    calls = [pipe.call(["seen"], [f"call-{n}"]) for n in range(50)]  # written before any reply is read

    replies = await asyncio.gather(*calls)

    assert replies == [[f"call-{n}".encode(), n + 1] for n in range(50)]
    assert sync_redis.lrange("seen", 0, -1) == [f"call-{n}".encode() for n in range(50)]
    assert pipe_client_count(sync_redis) == 1


async def test_a_lost_connection_fails_the_waiting_call_and_the_next_call_reconnects(
    pipe: ScriptPipe, sync_redis: redis.Redis
) -> None:
    assert await pipe.call(["seen"], ["before"]) == [b"before", 1]
    sync_redis.client_kill_filter(_type="normal", skipme=True)  # every connection but this one
    with pytest.raises(RedisConnectionError):
        await pipe.call(["seen"], ["lost"])

    assert await pipe.call(["seen"], ["after"]) == [b"after", 2]
    assert sync_redis.lrange("seen", 0, -1) == [b"before", b"after"]


async def test_a_flushed_script_cache_is_a_retryable_error_and_the_script_is_loaded_again(
    pipe: ScriptPipe, sync_redis: redis.Redis
) -> None:
    await pipe.call(["seen"], ["loaded"])
    sync_redis.script_flush()

    with pytest.raises(RedisConnectionError, match="NOSCRIPT"):
        await pipe.call(["seen"], ["flushed"])

    assert await pipe.call(["seen"], ["again"]) == [b"again", 2]


async def test_a_script_error_reaches_its_caller_and_the_connection_stays(
    pipe: ScriptPipe, sync_redis: redis.Redis
) -> None:
    sync_redis.set("seen", "not a list")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await pipe.call(["seen"], ["x"])
    sync_redis.delete("seen")

    assert await pipe.call(["seen"], ["y"]) == [b"y", 1]
    assert pipe_client_count(sync_redis) == 1


async def test_a_silent_server_fails_the_call_after_the_reply_timeout(
    pipe: ScriptPipe, sync_redis: redis.Redis
) -> None:
    await pipe.call(["seen"], ["awake"])
    pipe.reply_timeout_s = 0.2
    sync_redis.client_pause(5_000, all=False)  # holds back writes, scripts included
    try:
        with pytest.raises(RedisConnectionError, match="did not answer"):
            await pipe.call(["seen"], ["paused"])
    finally:
        sync_redis.client_unpause()

    reply = await pipe.call(["seen"], ["resumed"])
    assert reply[0] == b"resumed"
    assert sync_redis.lrange("seen", 0, -1)[-1] == b"resumed"


async def test_a_url_user_password_and_database_are_used(redis_url: str, sync_redis: redis.Redis) -> None:
    sync_redis.acl_setuser("payq-pipe", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"])
    try:
        store = Store.from_url(redis_url.replace("redis://", "redis://payq-pipe:s3cret@").rsplit("/", 1)[0] + "/3")
        pipe = store.pipe(ECHO)
        assert pipe is not None
        try:
            assert await pipe.call(["seen"], ["in db 3"]) == [b"in db 3", 1]
        finally:
            await store.close()
        assert not sync_redis.exists("seen")
        with redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3") as db3:
            assert db3.lrange("seen", 0, -1) == [b"in db 3"]
    finally:
        sync_redis.acl_deluser("payq-pipe")


async def test_a_wrong_password_is_a_connection_error(redis_url: str, sync_redis: redis.Redis) -> None:
    sync_redis.acl_setuser("payq-pipe", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"])
    store = Store.from_url(redis_url.replace("redis://", "redis://payq-pipe:wrong@"))
    pipe = store.pipe(ECHO)
    assert pipe is not None
    try:
        with pytest.raises(RedisConnectionError, match="refused"):
            await pipe.call(["seen"], ["x"])
    finally:
        await store.close()
        sync_redis.acl_deluser("payq-pipe")


def test_only_a_plain_redis_url_gets_a_pipe() -> None:
    assert Store.from_url("redis://127.0.0.1:1/0").pipe(ECHO) is not None
    assert Store.from_url("rediss://127.0.0.1:1/0").pipe(ECHO) is None
    assert Store.from_url("redis+sentinel://127.0.0.1:1/main").pipe(ECHO) is None


# --- the wake-up channel's subscription --------------------------------------------------------------------


async def test_a_subscription_hands_over_every_message_published_once_it_is_confirmed(
    store: Store, sync_redis: redis.Redis
) -> None:
    received: list[bytes] = []
    subscription = await store.subscribe("wake", received.append)
    assert subscription is not None
    try:
        # Subscribed as soon as subscribe returns: Redis counts the subscriber for the first publish.
        assert [sync_redis.publish("wake", f"q{n}") for n in range(100)] == [1] * 100
        sync_redis.publish("other", "not for us")
        await wait_until(lambda: len(received) == 100)
        assert received == [f"q{n}".encode() for n in range(100)]
    finally:
        subscription.close()
    assert await subscription.lost is None
    await wait_until(lambda: sync_redis.pubsub_numsub("wake") == [(b"wake", 0)])


async def test_a_subscription_reports_its_connection_lost(store: Store, sync_redis: redis.Redis) -> None:
    subscription = await store.subscribe("wake", lambda message: None)
    assert subscription is not None
    sync_redis.client_kill_filter(_type="pubsub")

    with pytest.raises(RedisConnectionError, match="subscription lost"):
        await asyncio.wait_for(subscription.lost, 5)


async def test_a_subscription_with_a_wrong_password_is_a_connection_error(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    sync_redis.acl_setuser("payq-sub", enabled=True, passwords=["+s3cret"], channels=["*"], commands=["+@all"])
    try:
        store = Store.from_url(redis_url.replace("redis://", "redis://payq-sub:wrong@"))
        with pytest.raises(RedisConnectionError, match="refused"):
            await store.subscribe("wake", lambda message: None)
        good = Store.from_url(redis_url.replace("redis://", "redis://payq-sub:s3cret@"))
        subscription = await good.subscribe("wake", lambda message: None)
        assert subscription is not None
        subscription.close()
        await asyncio.gather(store.close(), good.close())
    finally:
        sync_redis.acl_deluser("payq-sub")


def test_only_a_plain_redis_url_gets_a_subscription_of_its_own() -> None:
    # The others subscribe through redis-py's client (the worker falls back to it).
    assert Store.from_url("rediss://127.0.0.1:1/0")._single_server() is None
    assert Store.from_url("redis+sentinel://127.0.0.1:1/main")._single_server() is None
    assert Store.from_url("redis://127.0.0.1:1/0")._single_server() == {
        "host": "127.0.0.1",
        "port": 1,
        "db": 0,
        "username": None,
        "password": None,
    }
