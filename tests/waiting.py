"""Waiting for what another task or process does: poll a condition until it holds, and fail the test,
naming what it waited for, if it does not hold in time. Each wait ends as soon as its condition
holds; the time limit only bounds a failing test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_until(condition: Callable[[], object], what: str = "the condition", timeout_s: float = 30.0) -> None:
    """Poll ``condition`` on the running loop until it is truthy."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.01)


def block_until(condition: Callable[[], object], what: str = "the condition", timeout_s: float = 30.0) -> None:
    """Poll ``condition`` until it is truthy, blocking the thread (for tests without a loop)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.02)
