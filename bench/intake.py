"""Benchmark 2: intake throughput, signed distinct payments posted by wrk on loopback.

The requests are built before the run: each has its own txid and its own Standard Webhooks id,
timestamp and signature, so payq verifies, validates, dedupes and enqueues every one of them for
real. wrk's Lua cannot compute an HMAC, hence the pre-built file that wrk replays (bench/wrk/
replay.lua); the bare FastAPI endpoint and the node receiver get the very same requests and simply
ignore the signature headers.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import redis
from common import BENCH, NODE_DIR, PAYQ, PYTHON, SCRATCH, Children, free_port, rss_kib, say, wait_for_port

from service.networks import Chain, Network
from service.send import sample_address
from service.signatures import sign_webhook

SECRET = "whsec_" + base64.b64encode(b"payq benchmark secret, 32 bytes").decode()
ADDRESS = sample_address(Network.BITCOIN, Chain.MAIN)
QUEUE_KEY = "resque:queue:bitcoin:incoming"


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    not_accepted: int
    wrapped: bool
    socket_errors: int
    p50_ms: float
    p99_ms: float
    enqueued: int
    rss_idle_kib: int
    rss_loaded_kib: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def payment_body(txid: str) -> bytes:
    return orjson.dumps(
        {"txid": txid, "output_index": 0, "address": ADDRESS, "amount": "0.00150000", "confirmations": 1}
    )


def write_requests(path: Path, count: int) -> None:
    """``count`` signed deliveries of distinct payments, one per line, for wrk to replay."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    now = int(time.time())
    with path.open("wb") as out:
        for _ in range(count):
            body = payment_body(os.urandom(32).hex())
            webhook_id = f"msg_{uuid.uuid4().hex}"
            signature = sign_webhook(key, webhook_id, now, body)
            out.write(f"{webhook_id}\t{now}\t{signature}\t".encode() + body + b"\n")


def payq_env(redis_port: int, log_level: str) -> dict[str, str]:
    return {
        "PAYQ_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "PAYQ_WEBHOOK_SECRETS": SECRET,
        "PAYQ_BITCOIN_ADDRESSES": ADDRESS,
        "PAYQ_LOG_LEVEL": log_level,
        "PYTHONPATH": str(BENCH),
    }


def start_payq_api(children: Children, redis_port: int, port: int, log_level: str) -> list:
    argv = [str(PAYQ), "api", "--port", str(port)]
    return [children.start("payq-api", argv, payq_env(redis_port, log_level))]


def start_bare(children: Children, redis_port: int, port: int, log_level: str) -> list:
    argv = [str(PYTHON), str(BENCH / "bare_app.py"), str(port), log_level]
    return [children.start("bare-fastapi", argv, {"PYTHONPATH": str(BENCH)}, cwd=BENCH)]


def start_node_receiver(children: Children, redis_port: int, port: int, log_level: str) -> list:
    argv = ["node", str(BENCH / "node" / "receiver.js"), str(redis_port), str(port)]
    return [children.start("node-receiver", argv, {"NODE_PATH": str(NODE_DIR / "node_modules")})]


Starter = Callable[[Children, int, int, str], list]


def run_wrk(port: int, requests_file: Path, duration_s: float, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--timeout", "5s", "--latency",
            "-s", str(BENCH / "wrk" / "replay.lua"), f"http://127.0.0.1:{port}/payments/bitcoin",
            "--", str(requests_file), "1",
        ],
        capture_output=True, text=True, timeout=duration_s + 60, check=True,
    ).stdout  # fmt: skip
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def load(
    start: Starter,
    name: str,
    children: Children,
    client: redis.Redis,
    redis_port: int,
    requests_file: Path,
    duration_s: float,
    connections: int = 64,
    log_level: str = "info",
) -> Load:
    client.flushall()
    port = free_port()
    servers = start(children, redis_port, port, log_level)
    try:
        if not wait_for_port(port, 30):
            raise RuntimeError(f"{name} did not listen on {port}; see {SCRATCH / 'logs'}")
        time.sleep(1.0)  # let start-up work (imports, first connections) settle before the idle reading
        idle = rss_kib(servers[0].pid)
        run_wrk(port, requests_file, 1.0, 8)  # warm-up; its payments are removed below
        client.flushall()
        result = run_wrk(port, requests_file, duration_s, connections)
        loaded = rss_kib(servers[0].pid)
        enqueued = int(client.llen(QUEUE_KEY))
    finally:
        for server in servers:
            children.stop(server)
    outcome = Load(
        int(result["requests"]),
        float(result["seconds"]),
        int(result["not_accepted"]),
        bool(result["wrapped"]),
        int(result["socket_errors"]),
        float(result["p50_ms"]),
        float(result["p99_ms"]),
        enqueued,
        idle,
        loaded,
    )
    notes = []
    if outcome.not_accepted or outcome.socket_errors:
        notes.append(f"{outcome.not_accepted} not 202, {outcome.socket_errors} socket errors")
    if outcome.wrapped:
        notes.append("ran out of distinct requests")
    say(f"  {name}: {outcome.rate:,.0f} req/s, p99 {outcome.p99_ms:.1f} ms, {enqueued:,} jobs {' '.join(notes)}")
    return outcome
