"""Benchmark 1: worker throughput, jobs per second draining a full queue of trivial jobs.

Every system drains the same number of jobs from the same Redis. The clock starts at the first
finished job (so start-up and imports do not count) and stops at the last, or at the deadline, in
which case the rate is over what was done by then and the row says so. Progress is read from
Redis every few milliseconds: ``stat:processed`` for the Resque workers, RQ's finished registry,
and what is left of arq's queue.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from common import BENCH, NODE_DIR, PAYQ, PEER_PYTHON, Children, rss_kib, say

NOOP_JOB = b'{"class":"noop","queue":"bench","args":[]}'
POLL_S = 0.005


@dataclass(frozen=True)
class Drain:
    jobs: int
    done: int
    seconds: float
    complete: bool
    rss_kib: int

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class System:
    """One row of the table: how to fill its queue, start its workers, and count finished jobs."""

    name: str
    fill: Callable[[redis.Redis, int, int], None]
    start: Callable[[Children, int], list[subprocess.Popen[bytes]]]
    finished: Callable[[redis.Redis, int], int]


# --- Resque (payq and node-resque share the wire format, so they share the queue) -------------------


def fill_resque(client: redis.Redis, port: int, count: int) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.sadd("resque:queues", "bench")
    for start in range(0, count, 5000):
        pipe.rpush("resque:queue:bench", *([NOOP_JOB] * min(5000, count - start)))
    pipe.execute()


def resque_finished(client: redis.Redis, count: int) -> int:
    return int(client.get("resque:stat:processed") or 0)


Starter = Callable[[Children, int], list[subprocess.Popen[bytes]]]


def payq_workers(processes: int, concurrency: int, log_level: str) -> Starter:
    def start(children: Children, port: int) -> list[subprocess.Popen[bytes]]:
        env = {
            "PAYQ_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "PAYQ_JOBS": "bench_jobs",
            "PAYQ_LOG_LEVEL": log_level,
            "PYTHONPATH": str(BENCH),
        }
        argv = [str(PAYQ), "worker", "--queues", "bench", "--concurrency", str(concurrency)]
        return [children.start(f"payq-worker-{n}", argv, env) for n in range(processes)]

    return start


def node_worker(mode: str) -> Callable[[Children, int], list[subprocess.Popen[bytes]]]:
    def start(children: Children, port: int) -> list[subprocess.Popen[bytes]]:
        argv = ["node", str(BENCH / "node" / "worker.js"), str(port), mode]
        return [children.start(f"node-{mode}", argv, {"NODE_PATH": str(NODE_DIR / "node_modules")})]

    return start


# --- RQ and arq ---------------------------------------------------------------------------------------


def peer_fill(script: str) -> Callable[[redis.Redis, int, int], None]:
    def fill(client: redis.Redis, port: int, count: int) -> None:
        subprocess.run(
            [str(PEER_PYTHON), str(BENCH / "peers" / script), "fill", str(port), str(count)], check=True, timeout=300
        )

    return fill


def rq_start(children: Children, port: int) -> list[subprocess.Popen[bytes]]:
    rq = PEER_PYTHON.parent / "rq"
    argv = [str(rq), "worker", "--burst", "--worker-class", "rq.worker.SimpleWorker", "--url"]
    env = {"PYTHONPATH": str(BENCH / "peers")}
    return [children.start("rq-worker", [*argv, f"redis://127.0.0.1:{port}/0", "bench"], env)]


def rq_finished(client: redis.Redis, count: int) -> int:
    return int(client.zcard("rq:finished:bench"))


def arq_start(children: Children, port: int) -> list[subprocess.Popen[bytes]]:
    argv = [str(PEER_PYTHON), str(BENCH / "peers" / "arq_peer.py"), "work", str(port)]
    return [children.start("arq-worker", argv, {"PYTHONPATH": str(BENCH / "peers")})]


def arq_finished(client: redis.Redis, count: int) -> int:
    return count - int(client.zcard("arq:queue"))


PAYQ_LOADED = "payq, 1 process, 1 slot (log info)"


def systems(concurrency: int) -> list[System]:
    resque = {"fill": fill_resque, "finished": resque_finished}
    cores = os.cpu_count() or 1
    slots = f"{concurrency} slots"
    return [
        System(PAYQ_LOADED, start=payq_workers(1, 1, "info"), **resque),
        System(f"payq, 1 process, {slots} (log info)", start=payq_workers(1, concurrency, "info"), **resque),
        System(f"payq, 1 process, {slots} (log warning)", start=payq_workers(1, concurrency, "warning"), **resque),
        System(
            f"payq, {cores} processes x {slots} (log info)", start=payq_workers(cores, concurrency, "info"), **resque
        ),
        System("node-resque Worker", start=node_worker("worker"), **resque),
        System("node-resque MultiWorker", start=node_worker("multi"), **resque),
        System("RQ SimpleWorker", peer_fill("rq_peer.py"), rq_start, rq_finished),
        System("arq", peer_fill("arq_peer.py"), arq_start, arq_finished),
    ]


def drain(system: System, children: Children, client: redis.Redis, port: int, jobs: int, deadline_s: float) -> Drain:
    """Fill the queue, start the workers, and time them until the queue is done or the deadline."""
    client.flushall()
    system.fill(client, port, jobs)
    workers = system.start(children, port)
    try:
        started = time.monotonic()
        first_t, first_n = 0.0, 0
        while time.monotonic() - started < deadline_s:
            done = system.finished(client, jobs)
            if done > 0:
                first_t, first_n = time.monotonic(), done
                break
            time.sleep(POLL_S)
        last_t, last_n = first_t, first_n
        if first_n:
            end = first_t + deadline_s
            while last_n < jobs and time.monotonic() < end:
                time.sleep(POLL_S)
                last_t, last_n = time.monotonic(), system.finished(client, jobs)
        rss = sum(rss_kib(w.pid) for w in workers)
    finally:
        for worker in workers:
            children.stop(worker)
    result = Drain(jobs, last_n - first_n, last_t - first_t, last_n >= jobs, rss)
    say(f"  {system.name}: {result.rate:,.0f} jobs/s ({result.done:,} in {result.seconds:.2f} s)")
    return result


def lpop_ceiling(port: int, clients: int, requests: int) -> float:
    """redis-benchmark's LPOP rate against the same Redis (the list is filled by its LPUSH test first)."""
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", str(clients), "-n", str(requests), "-t", "lpush,lpop", "--csv"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    match = re.search(r'^"LPOP","([0-9.]+)"', out, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
