"""The jobs payq's workers perform in the benchmarks (PAYQ_JOBS=bench_jobs, with bench/ on the path)."""

from __future__ import annotations

import atexit
import os
import time

from workers.codec import JSONValue
from workers.jobs import job

_started_ns: list[tuple[int, int]] = []


@job("noop")
async def noop(*args: JSONValue) -> None:
    """The trivial job of the throughput benchmark."""


@job("bench_latency")
async def record_start(payment: dict[str, JSONValue]) -> None:
    """Note when the job started, beside the payment's number, which the load generator put at the
    head of the txid (it notes when it sent each one)."""
    now = time.time_ns()
    txid = payment.get("txid")
    if isinstance(txid, str):
        _started_ns.append((int(txid[:16], 16), now))


def _write_starts() -> None:
    path = os.environ.get("BENCH_LATENCY_FILE")
    if path and _started_ns:
        with open(path, "a") as out:
            out.writelines(f"{seq} {started}\n" for seq, started in _started_ns)


atexit.register(_write_starts)
