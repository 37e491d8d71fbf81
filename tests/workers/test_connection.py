"""The Redis connection payq opens: commands packed by hiredis exactly as redis-py would pack them."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import DataError

from workers.connection import HiredisPackingConnection, connect


@pytest.mark.parametrize(
    "args",
    [
        ("SET", "resque:queue:bench", b'{"class":"noop","args":[]}'),
        ("EVALSHA", "a" * 40, 2, "k1", "k2", 1.5, 1e-7, -3, "é ✓", b"\x00\xff"),
        ("CONFIG GET", "maxmemory"),
        ("RPUSH", "q", bytearray(b"raw"), memoryview(b"view")),
        ("SET", "k", ""),
    ],
)
def test_packs_commands_as_redis_py_does(args: tuple[object, ...]) -> None:
    assert b"".join(HiredisPackingConnection().pack_command(*args)) == b"".join(
        aioredis.Connection().pack_command(*args)
    )


@pytest.mark.parametrize("value", [True, None, object(), ["a"]])
def test_refuses_values_redis_py_refuses(value: object) -> None:
    with pytest.raises(DataError):
        aioredis.Connection().pack_command("SET", "k", value)
    with pytest.raises(DataError):
        HiredisPackingConnection().pack_command("SET", "k", value)


async def test_store_client_round_trips_through_the_hiredis_packer(redis_url: str) -> None:
    client = connect(redis_url)
    try:
        assert client.connection_pool.connection_class is HiredisPackingConnection
        await client.set("payq:test:packed", "é ✓ \x00")
        assert await client.get("payq:test:packed") == "é ✓ \x00".encode()
        assert list(await client.config_get("maxmemory")) == ["maxmemory"]  # "CONFIG GET" was split
    finally:
        await client.delete("payq:test:packed")
        await client.aclose()


class Level(int):
    def __repr__(self) -> str:
        return f"Level({int(self)})"


def test_packs_subclassed_numbers_by_their_repr_as_redis_py_does() -> None:
    args = ("SET", "k", Level(3))
    assert b"".join(HiredisPackingConnection().pack_command(*args)) == b"".join(
        aioredis.Connection().pack_command(*args)
    )
