"""Per-class time limits: a job that runs too long fails (and may be retried) instead of holding a slot."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any

from workers.errors import ResqueError

logger = logging.getLogger(__name__)


class JobTimeout(ResqueError):
    """A job ran past its class's time limit."""


async def perform(
    func: Callable[..., Any], args: list[Any], *, is_async: bool, timeout_s: float | None, executor: Executor
) -> None:
    """Run a job function to completion, or raise JobTimeout after ``timeout_s`` (None: no limit).

    Async jobs are cancelled at the limit. Plain functions run in a thread, and a Python thread
    cannot be killed: a sync job past its limit keeps running in the background until it returns by
    itself, while its slot moves on. Such jobs run on a daemon thread of their own rather than the
    worker's pool, so that a stuck one neither takes a pool thread for good nor blocks the process
    from exiting. Jobs that call out over the network should set their own I/O timeouts as well.
    """
    if is_async and timeout_s is None:
        await func(*args)
    elif is_async:
        await _within(func(*args), timeout_s)
    elif timeout_s is None:
        await asyncio.get_running_loop().run_in_executor(executor, partial(func, *args))
    else:
        await _within(_in_daemon_thread(partial(func, *args)), timeout_s)


async def _within(awaitable: Awaitable[Any], timeout_s: float | None) -> None:
    limit = asyncio.timeout(timeout_s)
    try:
        async with limit:
            await awaitable
    except TimeoutError:
        if limit.expired():
            raise JobTimeout(f"job exceeded its time limit of {timeout_s}s") from None
        raise


def _in_daemon_thread(call: Callable[[], Any]) -> asyncio.Future[Any]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def target() -> None:
        try:
            result = call()
        except BaseException as exc:
            deliver = partial(settle, partial(future.set_exception, exc))
        else:
            deliver = partial(settle, partial(future.set_result, result))
        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the loop closed while the job ran on past its limit
            logger.debug("timed-out job finished after its worker stopped")

    threading.Thread(target=target, name="payq-job-timed", daemon=True).start()
    return future
