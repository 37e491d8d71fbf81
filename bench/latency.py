"""Benchmark 3: end-to-end latency, from a signed webhook leaving the sender to its job starting.

An open-loop sender posts signed distinct payments at a fixed rate (half of the intake's measured
maximum) to ``payq api`` while a ``payq worker`` performs them. Each payment's txid carries the
time it was sent (nanoseconds, hex, characters 16-32); the job ``bench_latency`` notes when it
started, and the worker writes the pairs out when it stops. Sender, API, worker and Redis share the
machine's cores, so the figures include their competition for CPU.
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import time
import uuid
from dataclasses import dataclass

import redis
import uvloop
from common import BENCH, PAYQ, SCRATCH, Children, free_port, say, wait_for_port, wait_until
from intake import SECRET, payment_body, payq_env

from service.signatures import sign_webhook

CONNECTIONS = 32


@dataclass(frozen=True)
class Latency:
    rate: float
    sent: int
    started: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    http_p99_ms: float


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _send_all(port: int, rate: float, duration_s: float) -> tuple[int, list[float]]:
    """Post ``rate`` signed payments a second for ``duration_s``; return the count and HTTP latencies."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    answers: list[float] = []
    failures = 0

    async def post(seq: int) -> None:
        nonlocal failures
        reader, writer = await idle.get()
        try:
            sent_ns = time.time_ns()
            body = payment_body(f"{seq:016x}{sent_ns:016x}{os.urandom(16).hex()}")
            webhook_id = f"msg_{uuid.uuid4().hex}"
            now = sent_ns // 1_000_000_000
            head = (
                f"POST /payments/bitcoin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nwebhook-id: {webhook_id}\r\nwebhook-timestamp: {now}\r\n"
                f"webhook-signature: {sign_webhook(key, webhook_id, now, body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            answers.append((time.time_ns() - sent_ns) / 1e6)
            if b" 202 " not in status:
                failures += 1
        finally:
            idle.put_nowait((reader, writer))

    start = time.monotonic()
    total = int(rate * duration_s)
    tasks = []
    for seq in range(total):
        delay = start + seq / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(seq)))
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    while not idle.empty():
        _, writer = idle.get_nowait()
        writer.close()
    if failures:
        say(f"    {failures} deliveries were not answered 202")
    return total, answers


def measure(children: Children, client: redis.Redis, redis_port: int, rate: float, duration_s: float) -> Latency:
    client.flushall()
    starts = SCRATCH / "latency-starts.txt"
    starts.unlink(missing_ok=True)
    port = free_port()
    env = {
        **payq_env(redis_port, "info"),
        "PAYQ_JOBS": "bench_jobs",
        "PAYQ_BITCOIN_JOB_CLASS": "bench_latency",
        "BENCH_LATENCY_FILE": str(starts),
    }
    api = children.start("latency-api", [str(PAYQ), "api", "--port", str(port)], env)
    # Ten slots, as in the throughput rows: one slot drains about as fast as the payments arrive here,
    # and a queue that builds up would measure the backlog rather than the path from webhook to job.
    argv = [str(PAYQ), "worker", "--queues", "bitcoin:incoming", "--concurrency", "10"]
    worker = children.start("latency-worker", argv, env)
    try:
        if not wait_for_port(port, 30):
            raise RuntimeError(f"payq api did not listen; see {SCRATCH / 'logs'}")
        wait_until(lambda: bool(client.smembers("resque:workers")), 30)
        time.sleep(1.0)
        sent, answers = uvloop.run(_send_all(port, rate, duration_s))
        wait_until(lambda: int(client.get("resque:stat:processed") or 0) >= sent, 20)
    finally:
        children.stop(api)
        children.stop(worker)
    pairs = [line.split() for line in starts.read_text().splitlines()] if starts.exists() else []
    waits = [(int(started) - int(sent_ns)) / 1e6 for sent_ns, started in pairs]
    result = Latency(
        rate,
        sent,
        len(waits),
        statistics.median(waits) if waits else float("nan"),
        percentile(waits, 0.99),
        max(waits, default=float("nan")),
        percentile(answers, 0.99),
    )
    say(
        f"  at {rate:,.0f}/s: p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms ({len(waits)} of {sent} jobs), "
        f"HTTP p50 {percentile(answers, 0.5):.2f} ms p99 {result.http_p99_ms:.2f} ms"
    )
    return result


__all__ = ["BENCH", "Latency", "measure"]
