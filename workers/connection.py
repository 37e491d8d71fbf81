"""Opening the Redis connection payq works against."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import unquote

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workers import scripts
from workers.errors import ResqueError
from workers.keys import Keys
from workers.pipe import ScriptPipe, Subscription, subscribe

Redis = aioredis.Redis
logger = logging.getLogger(__name__)

SENTINEL_SCHEME = "redis+sentinel://"
MAX_CONNECTIONS = 64
POOL_WAIT_S = 10.0
_HASH_TAG = re.compile(r"\{[^{}]+\}")


class RedisUrlError(ResqueError):
    """PAYQ_REDIS_URL cannot be used as given."""


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """``redis+sentinel://[:password@]host:port[,host:port...]/master_name[/db]``, taken apart."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelUrl:
        if not url.startswith(SENTINEL_SCHEME):
            raise RedisUrlError(f"not a {SENTINEL_SCHEME} URL")
        rest = url[len(SENTINEL_SCHEME) :]
        password = None
        if "@" in rest:
            auth, _, rest = rest.rpartition("@")
            password = unquote(auth.partition(":")[2]) or None
        hosts, _, path = rest.partition("/")
        parts = [p for p in path.split("/") if p]
        if not hosts or not parts or len(parts) > 2:
            raise RedisUrlError("a Sentinel URL needs host:port[,host:port...]/master_name[/db]")
        sentinels = []
        for host_port in hosts.split(","):
            host, _, port = host_port.rpartition(":")
            if not host or not port.isdigit():
                raise RedisUrlError(f"sentinel address {host_port!r} is not host:port")
            sentinels.append((host.strip("[]"), int(port)))
        if len(parts) == 2 and not parts[1].isdigit():
            raise RedisUrlError(f"database {parts[1]!r} is not a number")
        return cls(tuple(sentinels), unquote(parts[0]), int(parts[1]) if len(parts) == 2 else 0, password)


def connect(url: str, **options: Any) -> Redis:
    """A client for ``url`` that returns bytes, so job payloads keep their exact stored form.

    A ``redis+sentinel://`` URL gives a client that asks the sentinels for the current master on
    every new connection, so it follows a failover by itself.
    """
    options.setdefault("health_check_interval", 10)
    if url.startswith(SENTINEL_SCHEME):
        parsed = SentinelUrl.parse(url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            list(parsed.sentinels), socket_timeout=options.get("socket_timeout", 5.0), decode_responses=False
        )
        client = sentinel.master_for(
            parsed.master, db=parsed.db, password=parsed.password, decode_responses=False, **options
        )
        return cast(Redis, client)
    # A burst of requests waits for a free connection instead of failing at once when all are busy.
    options.setdefault("max_connections", MAX_CONNECTIONS)
    options.setdefault("timeout", POOL_WAIT_S)
    if url.startswith("redis://"):
        options.setdefault("connection_class", HiredisPackingConnection)
    pool = aioredis.BlockingConnectionPool.from_url(url, decode_responses=False, **options)
    return aioredis.Redis.from_pool(pool)


class HiredisPackingConnection(aioredis.Connection):
    """A TCP connection that writes commands with hiredis's packer, written in C, instead of redis-py's
    own in Python: with a few dozen arguments per script call, packing was the largest part of a busy
    worker's time in the client."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:  # a command name such as "CONFIG GET"
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(tuple(_packable(arg) for arg in args))]
        except TypeError as exc:
            raise DataError(f"cannot send {exc}") from None


def _packable(value: Any) -> Any:
    """What hiredis packs as redis-py's encoder would encode it."""
    kind = type(value)
    if kind is bytes or kind is str or kind is int:  # hiredis writes an int's digits, as repr() would
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, bool):
        raise DataError("a bool cannot be sent to Redis: convert it to bytes, str or a number first")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    raise DataError(f"a {kind.__name__} cannot be sent to Redis: convert it to bytes, str or a number first")


async def open_store(url: str, namespace: str = "resque", **options: Any) -> Store:
    """A store for ``url``, speaking the cluster protocol when the server is a Redis Cluster node.

    On a cluster every key payq touches in one step must live in one hash slot, which only a
    hash-tagged namespace such as ``{resque}`` guarantees; without one payq refuses to start.
    """
    client = connect(url, **options)
    if url.startswith(SENTINEL_SCHEME):
        return Store(client, Keys(namespace))
    try:
        info = await client.info("cluster")
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        # Redis is not up yet: start anyway (the API answers 503, workers wait) and assume a
        # single server; a cluster is only recognised when it answers at start-up.
        logger.warning("redis not reachable at start-up error=%s", exc)
        return Store(client, Keys(namespace))
    if not info.get("cluster_enabled"):
        return Store(client, Keys(namespace))
    await client.aclose()
    if not _HASH_TAG.search(namespace):
        raise RedisUrlError(
            f"PAYQ_REDIS_URL points at a Redis Cluster, where PAYQ_NAMESPACE must contain a hash tag "
            f"such as {{{namespace}}} so that each of payq's atomic steps stays in one slot"
        )
    options.setdefault("health_check_interval", 10)
    cluster = RedisCluster.from_url(url, decode_responses=False, **options)
    # RedisCluster offers the commands, pipelines, scripts and pub/sub payq uses with the same
    # signatures; the type checker knows it as a separate class.
    return Store(cast(Redis, cluster), Keys(namespace))


ScriptCall = Callable[[Sequence[str | bytes], Sequence[str | bytes | int]], Awaitable[Any]]
"""A script's caller: ``call(keys, args)`` returns an awaitable of the reply."""


@dataclass(slots=True)
class Store:
    """A Redis client, the namespace's key names, and payq's scripts registered on that client."""

    redis: Redis
    keys: Keys = field(default_factory=Keys)
    pipes: bool = True
    """Whether ``call_script`` and ``subscribe`` may use connections of their own; False keeps every call
    and subscription on the shared client."""
    enqueue: AsyncScript = field(init=False)
    requeue: AsyncScript = field(init=False)
    recover: AsyncScript = field(init=False)
    retry_failed: AsyncScript = field(init=False)
    enqueue_unique: AsyncScript = field(init=False)
    _on_demand: dict[str, AsyncScript] = field(init=False, default_factory=dict, repr=False)
    _pipes: dict[str, ScriptPipe] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.enqueue = self.redis.register_script(scripts.ENQUEUE)
        self.requeue = self.redis.register_script(scripts.REQUEUE)
        self.recover = self.redis.register_script(scripts.RECOVER)
        self.retry_failed = self.redis.register_script(scripts.RETRY_FAILED)
        self.enqueue_unique = self.redis.register_script(scripts.ENQUEUE_UNIQUE)

    @classmethod
    def from_url(cls, url: str, namespace: str = "resque") -> Store:
        return cls(connect(url), Keys(namespace))

    def script(self, source: str) -> AsyncScript:
        """``source`` registered on this store's client, once (for scripts outside the fields above)."""
        script = self._on_demand.get(source)
        if script is None:
            script = self._on_demand[source] = self.redis.register_script(source)
        return script

    def call_script(self, source: str) -> ScriptCall:
        """How to call ``source`` on a hot path: over its pipe where the store has one, else through
        the shared client. Either way the call returns an awaitable of the script's reply."""
        pipe = self.pipe(source) if self.pipes else None
        if pipe is not None:
            return pipe.call
        script = self.script(source)
        return lambda keys, args: script(keys=keys, args=args)

    def pipe(self, source: str) -> ScriptPipe | None:
        """``source`` on a pipelined connection of its own (``workers.pipe``), closed with the store; None
        unless the store talks to a single server by a ``redis://`` URL."""
        pipe = self._pipes.get(source)
        server = self._single_server()
        if pipe is None and server is not None:
            pipe = self._pipes[source] = ScriptPipe(source, **server)
        return pipe

    async def subscribe(self, channel: str, on_message: Callable[[bytes], None]) -> Subscription | None:
        """``channel`` subscribed on a connection of its own (``workers.pipe.subscribe``), for the caller
        to close; None unless the store talks to a single server by a ``redis://`` URL and may use pipes
        (then use ``redis.pubsub()``). Raises redis.exceptions.ConnectionError when Redis cannot be reached."""
        server = self._single_server() if self.pipes else None
        if server is None:
            return None
        del server["db"]  # channels are the same in every database
        return await subscribe(channel, on_message, **server)

    def _single_server(self) -> dict[str, Any] | None:
        """Where the client connects when it is to a single server by a ``redis://`` URL, else None."""
        pool = getattr(self.redis, "connection_pool", None)
        if pool is None or pool.connection_class is not HiredisPackingConnection:
            return None
        options = pool.connection_kwargs
        return {
            "host": options.get("host", "127.0.0.1"),
            "port": int(options.get("port", 6379)),
            "db": int(options.get("db") or 0),
            "username": options.get("username"),
            "password": options.get("password"),
        }

    async def close(self) -> None:
        """Close the client and the pipes, and with a Sentinel URL the connections to the sentinels too."""
        for pipe in self._pipes.values():
            await pipe.close()
        manager = getattr(getattr(self.redis, "connection_pool", None), "sentinel_manager", None)
        await self.redis.aclose()
        for sentinel in getattr(manager, "sentinels", ()):
            await sentinel.aclose()


def as_text(value: bytes | str) -> str:
    """A Redis reply as text (payq's client returns bytes; the type stubs allow either)."""
    return value.decode() if isinstance(value, bytes) else value


def as_bytes(value: bytes | str) -> bytes:
    """A Redis reply as the exact bytes stored."""
    return value.encode() if isinstance(value, str) else bytes(value)
