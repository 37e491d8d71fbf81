"""arq's side of the throughput benchmark, run with the scratch venv's Python.

``python arq_peer.py fill PORT COUNT`` enqueues COUNT trivial jobs; ``python arq_peer.py work PORT``
runs an arq worker until stopped: ten jobs at once (its default), polling every 5 ms rather than
every 0.5 s (its default, which caps a worker at 200 jobs/s).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker


async def noop(ctx: dict[str, Any]) -> None:
    """The trivial job."""


async def fill(port: int, count: int, batch: int = 500) -> None:
    pool = await create_pool(RedisSettings(port=port))
    for start in range(0, count, batch):
        size = min(batch, count - start)
        await asyncio.gather(*(pool.enqueue_job("noop") for _ in range(size)))
    await pool.aclose()


def work(port: int) -> None:
    worker = Worker(functions=[noop], redis_settings=RedisSettings(port=port), handle_signals=True, poll_delay=0.005)
    worker.run()


if __name__ == "__main__":
    command, port = sys.argv[1], int(sys.argv[2])
    if command == "fill":
        asyncio.run(fill(port, int(sys.argv[3])))
    elif command == "work":
        work(port)
    else:
        raise SystemExit("usage: arq_peer.py fill PORT COUNT | work PORT")
