"""Benchmark 3: end-to-end latency, from a signed webhook leaving the sender to its job starting.

An open-loop sender posts signed distinct payments at a fixed rate (half of the intake's measured
maximum) to ``payq api`` while a ``payq worker`` performs them. The requests are signed before the
clock starts and the sender notes when each one leaves; each payment's txid starts with its number
(16 hex digits), the job ``bench_latency`` notes when it started, and the worker writes the pairs
out when it stops. Sender, API, worker and Redis share the machine's cores, so the figures include
their competition for CPU.
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import cast

import redis
import uvloop
from common import BENCH, PAYQ, SCRATCH, Children, free_port, on_schedule, say, wait_for_port, wait_until
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


def build_requests(port: int, count: int) -> list[bytes]:
    """``count`` signed deliveries of distinct payments, built before the clock starts.

    Payment ``seq``'s txid starts with ``seq`` in 16 hex digits, so that the job can say which
    payment it performed; the sender notes when each one leaves."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    now = int(time.time())
    requests = []
    for seq in range(count):
        body = payment_body(f"{seq:016x}{os.urandom(24).hex()}")
        webhook_id = f"msg_{uuid.uuid4().hex}"
        head = (
            f"POST /payments/bitcoin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nwebhook-id: {webhook_id}\r\nwebhook-timestamp: {now}\r\n"
            f"webhook-signature: {sign_webhook(key, webhook_id, now, body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


class _Connection(asyncio.Protocol):
    """One keep-alive connection of the sender: one request at a time, answers parsed just enough."""

    def __init__(self, sender: _Sender) -> None:
        self.sender = sender
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.sent_ns = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.sent_ns = time.time_ns()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end].lower()
        length = 0
        for line in head.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        if len(self.buffer) < head_end + 4 + length:
            return
        self.buffer = self.buffer[head_end + 4 + length :]
        self.sender.answered(self, (time.time_ns() - self.sent_ns) / 1e6, b" 202 " in head[:16])

    def connection_lost(self, exc: Exception | None) -> None:
        self.sender.lost(self)


class _Sender:
    """An open-loop load generator: request ``seq`` leaves at ``start + seq / rate`` (or as soon after as
    a connection is free), whether or not the answers before it have come back.

    It is lean on purpose (requests signed beforehand, no task per request): it shares the machine's
    cores with payq, so every microsecond it spends is one payq cannot."""

    def __init__(self, requests: list[bytes]) -> None:
        self.requests = requests
        self.sent_ns = [0] * len(requests)
        self.answers: list[float] = []
        self.failures = 0
        # Oldest first, so that every connection is used in turn: uvicorn closes one idle for 5 s.
        self.idle: deque[_Connection] = deque()
        self.free: asyncio.Event = asyncio.Event()
        self.done = asyncio.get_running_loop().create_future()
        self.closed = 0

    def answered(self, connection: _Connection, ms: float, accepted: bool) -> None:
        self.answers.append(ms)
        self.failures += not accepted
        self.idle.append(connection)
        self.free.set()
        if len(self.answers) == len(self.requests) and not self.done.done():
            self.done.set_result(None)

    def lost(self, connection: _Connection) -> None:
        self.closed += 1
        if connection in self.idle:
            self.idle.remove(connection)
        if not self.done.done() and len(self.answers) < len(self.requests):
            self.done.set_exception(ConnectionError("the server closed a connection during the run"))

    async def run(self, port: int, rate: float) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(CONNECTIONS):
            _, connection = await loop.create_connection(lambda: _Connection(self), "127.0.0.1", port)
            self.idle.append(connection)
        async for seq in on_schedule(len(self.requests), rate):
            request = self.requests[seq]
            while not self.idle:
                self.free.clear()
                await self.free.wait()
            connection = self.idle.popleft()
            connection.send(request)
            self.sent_ns[seq] = connection.sent_ns
        await asyncio.wait_for(self.done, 30)


async def send_all(port: int, rate: float, requests: list[bytes]) -> tuple[list[int], list[float]]:
    """Post the requests at ``rate`` a second; return when each left and the HTTP latencies."""
    sender = _Sender(requests)
    try:
        await sender.run(port, rate)
    finally:
        for connection in sender.idle:
            if connection.transport is not None:
                connection.transport.close()
    if sender.failures:
        say(f"    {sender.failures} deliveries were not answered 202")
    return sender.sent_ns, sender.answers


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
    requests = build_requests(port, int(rate * duration_s))
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
        sent_ns, answers = uvloop.run(send_all(port, rate, requests))
        sent = len(sent_ns)
        wait_until(lambda: int(client.get("resque:stat:processed") or 0) >= sent, 20)
    finally:
        children.stop(api)
        children.stop(worker)
    pairs = [line.split() for line in starts.read_text().splitlines()] if starts.exists() else []
    waits = [(int(started) - sent_ns[int(seq)]) / 1e6 for seq, started in pairs]
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
