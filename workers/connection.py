"""Opening the Redis connection payq works against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from workers import scripts
from workers.keys import Keys

Redis = aioredis.Redis


def connect(url: str, **options: Any) -> Redis:
    """A client for ``url`` that returns bytes, so job payloads keep their exact stored form."""
    options.setdefault("health_check_interval", 10)
    return aioredis.Redis.from_url(url, decode_responses=False, **options)


@dataclass(slots=True)
class Store:
    """A Redis client, the namespace's key names, and payq's scripts registered on that client."""

    redis: Redis
    keys: Keys = field(default_factory=Keys)
    enqueue: AsyncScript = field(init=False)
    claim: AsyncScript = field(init=False)
    finish: AsyncScript = field(init=False)
    requeue: AsyncScript = field(init=False)
    recover: AsyncScript = field(init=False)
    retry_failed: AsyncScript = field(init=False)
    enqueue_unique: AsyncScript = field(init=False)

    def __post_init__(self) -> None:
        self.enqueue = self.redis.register_script(scripts.ENQUEUE)
        self.claim = self.redis.register_script(scripts.CLAIM)
        self.finish = self.redis.register_script(scripts.FINISH)
        self.requeue = self.redis.register_script(scripts.REQUEUE)
        self.recover = self.redis.register_script(scripts.RECOVER)
        self.retry_failed = self.redis.register_script(scripts.RETRY_FAILED)
        self.enqueue_unique = self.redis.register_script(scripts.ENQUEUE_UNIQUE)

    @classmethod
    def from_url(cls, url: str, namespace: str = "resque") -> Store:
        return cls(connect(url), Keys(namespace))

    async def close(self) -> None:
        await self.redis.aclose()


def as_text(value: bytes | str) -> str:
    """A Redis reply as text (payq's client returns bytes; the type stubs allow either)."""
    return value.decode() if isinstance(value, bytes) else value


def as_bytes(value: bytes | str) -> bytes:
    """A Redis reply as the exact bytes stored."""
    return value.encode() if isinstance(value, str) else bytes(value)
