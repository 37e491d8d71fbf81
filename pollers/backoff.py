"""Bounded retries with exponential backoff and full jitter, for calls to nodes and servers."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pollers.errors import PollerError, RpcUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """How often and how patiently to retry: ``attempts`` tries, waits growing from ``base_s`` to ``max_s``."""

    base_s: float = 0.5
    max_s: float = 30.0
    attempts: int = 4

    def delay_s(self, attempt: int, *, rng: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``attempt`` (1-based): uniform in [0, min(max, base * 2^(attempt-1))]."""
        ceiling = min(self.max_s, self.base_s * 2 ** max(attempt - 1, 0))
        return float(ceiling * rng())


async def with_retries(
    call: Callable[[], Awaitable[T]], backoff: Backoff, *, what: str, sleep: Sleep = asyncio.sleep
) -> T:
    """Await ``call()``, retrying retryable PollerErrors up to ``backoff.attempts`` tries in all.

    A server's Retry-After (capped at ``backoff.max_s``) wins over the computed wait.
    """
    attempt = 1
    while True:
        try:
            return await call()
        except PollerError as exc:
            if not exc.retryable or attempt >= backoff.attempts:
                raise
            delay_s = backoff.delay_s(attempt)
            if isinstance(exc, RpcUnavailable) and exc.retry_after_s is not None:
                delay_s = min(exc.retry_after_s, backoff.max_s)
            logger.warning(
                "call failed, retrying call=%s attempt=%s delay_s=%.2f error=%s", what, attempt, delay_s, exc
            )
            await sleep(delay_s)
            attempt += 1
