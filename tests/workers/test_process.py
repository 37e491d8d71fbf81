"""Real ``payq worker`` processes: killed, stopped, prioritised and run with several slots."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis

from tests.waiting import block_until
from tests.workers.sample_jobs import DONE, RELEASE, STARTED
from workers.codec import encode_job
from workers.connection import as_text

REPO = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()


@dataclass
class WorkerProcess:
    """A ``payq worker`` child process and the file its output goes to."""

    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")


SpawnWorker = Callable[..., WorkerProcess]


def worker_env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYQ_")}
    env.update(
        PAYQ_REDIS_URL=redis_url,
        PAYQ_JOBS="tests.workers.sample_jobs",
        PAYQ_HEARTBEAT_INTERVAL_S="0.2",
        PAYQ_WORKER_TIMEOUT_S="1",
        PAYQ_POLL_INTERVAL_S="0.1",
        PAYQ_SHUTDOWN_GRACE_S="20",
    )
    return env


@pytest.fixture
def spawn_worker(redis_url: str, tmp_path: Path) -> Iterator[SpawnWorker]:
    """Start ``payq worker ARGS...`` processes; any still running at the end are killed."""
    started: list[WorkerProcess] = []

    def spawn(*args: str) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "worker", *args],
                cwd=REPO,
                env=worker_env(redis_url),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(WorkerProcess(proc, log))
        return started[-1]

    try:
        yield spawn
    finally:
        for worker in started:
            if worker.proc.poll() is None:
                worker.proc.kill()
            worker.proc.wait(10)


def ids_of(client: redis.Redis, pid: int) -> set[str]:
    """The Resque worker ids a process registered."""
    members = {as_text(m) for m in client.smembers("resque:workers")}
    return {m for m in members if m.startswith(f"{HOST}:{pid}:") or m.startswith(f"{HOST}:{pid}+")}


def in_flight(client: redis.Redis, worker_id: str) -> dict[str, object] | None:
    raw = client.get(f"resque:worker:{worker_id}")
    return orjson.loads(raw) if raw else None


def push_jobs(client: redis.Redis, queue: str, class_name: str, job_ids: list[str]) -> None:
    for job_id in job_ids:
        client.sadd("resque:queues", queue)
        client.rpush(f"resque:queue:{queue}", encode_job(queue, class_name, [job_id]))


def decoded(client: redis.Redis, key: str) -> list[str]:
    return [as_text(v) for v in client.lrange(key, 0, -1)]


def test_rerun_job_of_killed_worker_in_new_process(spawn_worker: SpawnWorker, sync_redis: redis.Redis) -> None:
    job_ids = [f"job-{n}" for n in range(4)]
    push_jobs(sync_redis, "q", "hold", job_ids)
    first = spawn_worker("--queues", "q")
    block_until(lambda: ids_of(sync_redis, first.pid), "the first worker to register")
    [first_id] = ids_of(sync_redis, first.pid)
    block_until(lambda: in_flight(sync_redis, first_id) and sync_redis.llen(STARTED) == 1, "a job in flight")
    record = in_flight(sync_redis, first_id)
    assert isinstance(record, dict) and isinstance(record["payload"], dict)
    [killed_job] = record["payload"]["args"]

    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    sync_redis.set(RELEASE, "1")
    second = spawn_worker("--queues", "q")
    block_until(lambda: sorted(set(decoded(sync_redis, DONE))) == job_ids, f"every job done\n{second.output()}")

    assert killed_job == "job-0"
    assert decoded(sync_redis, STARTED).count(killed_job) >= 2
    assert all(job_id in decoded(sync_redis, STARTED) for job_id in job_ids)
    assert sync_redis.llen("resque:queue:q") == 0
    assert sync_redis.llen("resque:failed") == 0
    assert first_id not in ids_of(sync_redis, first.pid)
    assert not sync_redis.exists(f"resque:worker:{first_id}")
    assert "dead worker recovered" in second.output()


def test_finish_job_when_busy_worker_gets_sigterm(spawn_worker: SpawnWorker, sync_redis: redis.Redis) -> None:
    push_jobs(sync_redis, "q", "hold", ["paid"])
    worker = spawn_worker("--queues", "q")
    block_until(lambda: sync_redis.llen(STARTED) == 1, "the job to start")
    [worker_id] = ids_of(sync_redis, worker.pid)

    worker.proc.send_signal(signal.SIGTERM)
    block_until(lambda: "worker stopping" in worker.output(), "the worker to acknowledge SIGTERM")
    assert worker.proc.poll() is None, "the worker exited with its job unfinished"
    sync_redis.set(RELEASE, "1")

    assert worker.proc.wait(20) == 0, worker.output()
    assert decoded(sync_redis, DONE) == ["paid"]
    assert sync_redis.get("resque:stat:processed") == b"1"
    assert sync_redis.get("resque:stat:failed") is None
    assert sync_redis.llen("resque:failed") == 0
    assert sync_redis.llen("resque:queue:q") == 0
    assert sync_redis.smembers("resque:workers") == set()
    for key in (
        f"resque:worker:{worker_id}",
        f"resque:worker:{worker_id}:started",
        f"resque:worker:ping:{HOST}:{worker.pid}",
    ):
        assert not sync_redis.exists(key), key
    assert sync_redis.hget("resque:workers:heartbeat", worker_id) is None


def test_perform_queues_in_priority_order(spawn_worker: SpawnWorker, sync_redis: redis.Redis) -> None:
    push_jobs(sync_redis, "b", "record", ["b-1", "b-2"])
    push_jobs(sync_redis, "a", "record", ["a-1", "a-2"])
    push_jobs(sync_redis, "c", "record", ["c-1"])

    worker = spawn_worker("--queues", "a,b")
    block_until(lambda: sync_redis.llen(DONE) == 4, f"the a and b jobs\n{worker.output()}")

    assert decoded(sync_redis, DONE) == ["a-1", "a-2", "b-1", "b-2"]
    assert ids_of(sync_redis, worker.pid) == {f"{HOST}:{worker.pid}:a,b"}
    assert decoded(sync_redis, "resque:queue:c") == [encode_job("c", "record", ["c-1"]).decode()]


def test_register_three_slots_with_concurrency_3(spawn_worker: SpawnWorker, sync_redis: redis.Redis) -> None:
    push_jobs(sync_redis, "q", "hold", ["h-1", "h-2", "h-3"])
    worker = spawn_worker("--queues", "q", "--concurrency", "3")
    expected = {f"{HOST}:{worker.pid}+{n}:q" for n in (1, 2, 3)}
    block_until(lambda: ids_of(sync_redis, worker.pid) == expected, f"three slots\n{worker.output()}")

    block_until(lambda: all(in_flight(sync_redis, wid) for wid in expected), "three jobs in flight at once")
    records = [in_flight(sync_redis, wid) for wid in sorted(expected)]
    assert sorted(r["payload"]["args"][0] for r in records if r and isinstance(r["payload"], dict)) == [
        "h-1",
        "h-2",
        "h-3",
    ]
    assert [r["worker"] for r in records if r] == [f"{HOST}:{worker.pid}+{n}" for n in (1, 2, 3)]
    sync_redis.set(RELEASE, "1")
    block_until(lambda: sync_redis.llen(DONE) == 3, "the three jobs to finish")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(20) == 0
    assert sync_redis.get("resque:stat:processed") == b"3"
    assert sync_redis.smembers("resque:workers") == set()
