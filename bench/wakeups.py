"""Benchmark 3b: CPU per payment at half load, beside what the same wake-ups cost with no work at all.

At half load a process mostly waits, and each payment wakes it from its event loop's poll; its code
then runs with cold caches and costs several times what it costs in a process kept busy (benchmark
1). This benchmark tells apart, at the latency benchmark's rate, what the wake-ups cost and what
payq's work on each payment adds to them:

- the API: the latency benchmark's sender posts signed payments at the rate to ``payq api``, then to
  the bare FastAPI endpoint, which has the same HTTP wake-ups without the Redis round trip;
- the worker: jobs pushed one at a time at the rate, each with a wake-up message as the intake
  sends it, to ``payq worker --concurrency 10``, then to ``floor_worker.py``, which makes the same
  three wake-ups per job as an idle payq slot (the message, the claim's reply, the finish's reply)
  and nothing else.

Each row is the process's CPU time over the run (from /proc) divided by the payments it handled.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import cast

import redis
import uvloop
from common import (
    BENCH,
    PAYQ,
    PYTHON,
    Children,
    cpu_seconds,
    free_port,
    on_schedule,
    say,
    wait_for_port,
    wait_until,
)
from drain import NOOP_JOB
from floor_worker import command
from intake import payq_env, start_bare, start_payq_api
from latency import build_requests, send_all

from workers.keys import Keys

KEYS = Keys()  # payq's keys in the default namespace, as the bench's payq processes use them


@dataclass(frozen=True)
class Cost:
    name: str
    items: int
    cpu_us: float  # per item


def api_costs(children: Children, client: redis.Redis, redis_port: int, rate: float, duration_s: float) -> list[Cost]:
    costs = []
    for name, start in [("payq api", start_payq_api), ("bare FastAPI endpoint", start_bare)]:
        client.flushall()
        port = free_port()
        [server] = start(children, redis_port, port, "info")
        try:
            if not wait_for_port(port, 30):
                raise RuntimeError(f"{name} did not listen")
            time.sleep(1.0)
            requests = build_requests(port, int(rate * duration_s))
            before = cpu_seconds(server.pid)
            uvloop.run(send_all(port, rate, requests))
            costs.append(Cost(name, len(requests), (cpu_seconds(server.pid) - before) / len(requests) * 1e6))
        finally:
            children.stop(server)
    return costs


class _Pusher(asyncio.Protocol):
    """Pushes a job and publishes its wake-up in one write, as the intake's script does, on a schedule."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:  # the replies: not needed
        pass


async def _push(redis_port: int, queue: str, rate: float, count: int) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(_Pusher, "127.0.0.1", redis_port)
    push = command(b"RPUSH", KEYS.queue(queue).encode(), NOOP_JOB) + command(
        b"PUBLISH", KEYS.wake_channel.encode(), queue.encode()
    )
    async for _ in on_schedule(count, rate):
        transport.write(push)
    transport.close()


def worker_costs(
    children: Children, client: redis.Redis, redis_port: int, rate: float, duration_s: float
) -> list[Cost]:
    env = {**payq_env(redis_port, "info"), "PAYQ_JOBS": "bench_jobs"}
    floor = [str(PYTHON), str(BENCH / "floor_worker.py"), str(redis_port), KEYS.queue("bench"), KEYS.wake_channel]
    workers = [
        ("payq worker --concurrency 10", [str(PAYQ), "worker", "--queues", "bench", "--concurrency", "10"]),
        ("floor: the same three wake-ups", floor),
    ]
    count = int(rate * duration_s)
    costs = []
    for name, argv in workers:
        client.flushall()
        worker = children.start("wakeups-worker", argv, env)
        try:
            if not wait_until(lambda: client.pubsub_numsub(KEYS.wake_channel)[0][1] > 0, 30):
                raise RuntimeError(f"{name} did not subscribe")
            time.sleep(1.0)
            before = cpu_seconds(worker.pid)
            uvloop.run(_push(redis_port, "bench", rate, count))
            if not wait_until(lambda: int(client.get("resque:stat:processed") or 0) >= count, 20):
                say(f"    {name} did not finish every job")
            costs.append(Cost(name, count, (cpu_seconds(worker.pid) - before) / count * 1e6))
        finally:
            children.stop(worker)
    return costs


def measure(children: Children, client: redis.Redis, redis_port: int, rate: float, duration_s: float) -> list[Cost]:
    costs = api_costs(children, client, redis_port, rate, duration_s)
    costs += worker_costs(children, client, redis_port, rate, duration_s)
    say("  " + ", ".join(f"{c.name}: {c.cpu_us:.0f} us" for c in costs))
    return costs
