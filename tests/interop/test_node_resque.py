"""payq and node-resque 9.7.1 on one Redis: each reads, performs, lists and removes what the other wrote."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import redis

from tests.interop.conftest import NodeResque, RunWorker
from tests.waiting import wait_until
from workers.codec import JSONValue
from workers.connection import Store, as_text
from workers.failures import failed_count, list_failed, remove_failed, retry_failed
from workers.jobs import Registry
from workers.queues import delete_jobs, enqueue
from workers.status import read_stats

PAYMENT: dict[str, JSONValue] = {
    "id": "bitcoin:4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b:1",
    "network": "bitcoin",
    "amount": "0.00150000",
    "currency": "BTC",
    "confirmations": 3,
    "source": "webhook",
}

# Arguments whose bytes differ between careless encoders: nesting, non-ASCII, "/", [], integers.
TRICKY_ARGS: list[list[JSONValue]] = [
    [PAYMENT],
    [{"nested": {"deeper": [1, {"x": [True, False, None]}], "empty": {}}}, "two"],
    ["café ₿ 日本語 — ✓", "path/to/thing", "https://example.com/a/b?c=d"],
    [],
    [[], [[]], {}],
    [0, -1, 42, 9007199254740991, -9007199254740991, 1.5, -0.25],
    ['quote " and backslash \\ and tab \t and newline \n'],
]


class Recorder:
    """Jobs that write down the arguments they were called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[JSONValue]]] = []
        self.lock = threading.Lock()

    def job(self, name: str) -> Any:
        def perform(*args: JSONValue) -> None:
            with self.lock:
                self.calls.append((name, list(args)))

        return perform

    def registry(self, *names: str) -> Registry:
        registry = Registry()
        for name in names:
            registry.register(self.job(name), name)
        return registry


def explode(*args: JSONValue) -> None:
    raise ValueError(f"cannot handle ₿ payment {args[0]!r}")


async def test_perform_node_enqueued_jobs_with_same_args(
    node_resque: NodeResque, run_worker: RunWorker, sync_redis: redis.Redis
) -> None:
    recorder = Recorder()
    async with run_worker(recorder.registry("log", "someJob"), queues=("bitcoin:incoming",)):
        assert await node_resque.queue("enqueue", "bitcoin:incoming", "log", [PAYMENT]) is True
        for args in TRICKY_ARGS[1:]:
            await node_resque.queue("enqueue", "bitcoin:incoming", "someJob", args)
        await wait_until(lambda: len(recorder.calls) == len(TRICKY_ARGS), what="node jobs performed")
        await wait_until(lambda: sync_redis.get("resque:stat:processed") == str(len(TRICKY_ARGS)).encode())

    assert recorder.calls == [("log", [PAYMENT])] + [("someJob", args) for args in TRICKY_ARGS[1:]]
    assert sync_redis.llen("resque:queue:bitcoin:incoming") == 0
    assert sync_redis.get("resque:stat:failed") is None


async def test_wildcard_worker_performs_node_and_ruby_jobs_on_new_queues(
    node_resque: NodeResque, run_worker: RunWorker, sync_redis: redis.Redis
) -> None:
    recorder = Recorder()
    async with run_worker(recorder.registry("someJob"), queues=("*",)):
        await node_resque.queue("enqueue", "created:later", "someJob", [{"from": "node"}])
        sync_redis.sadd("resque:queues", "ruby")
        sync_redis.rpush("resque:queue:ruby", b'{"class":"someJob","args":[{"from":"ruby"},1.0]}')
        await wait_until(lambda: len(recorder.calls) == 2, what="jobs from queues made after the worker started")

    assert sorted(recorder.calls, key=repr) == [("someJob", [{"from": "node"}]), ("someJob", [{"from": "ruby"}, 1.0])]
    assert sync_redis.get("resque:stat:processed") == b"2"


async def test_node_worker_performs_payq_jobs_with_identical_args(
    node_resque: NodeResque, store: Store, sync_redis: redis.Redis
) -> None:
    for args in TRICKY_ARGS:
        await enqueue(store, "q", "echo", args)

    result = await node_resque.work("q", len(TRICKY_ARGS))

    assert [(job["outcome"], job["queue"], job["class"]) for job in result["jobs"]] == [("success", "q", "echo")] * len(
        TRICKY_ARGS
    )
    assert [job["args"] for job in result["jobs"]] == TRICKY_ARGS
    assert sync_redis.get("resque:stat:processed") == str(len(TRICKY_ARGS)).encode()
    assert sync_redis.llen("resque:queue:q") == 0


async def test_retry_payq_failure_with_node(
    node_resque: NodeResque, run_worker: RunWorker, store: Store, sync_redis: redis.Redis
) -> None:
    registry = Registry()
    registry.register(explode, "explode")
    async with run_worker(registry) as worker:
        raw = await enqueue(store, "q", "explode", ["tx/1", {"amount": "0.1", "note": "café"}, []])
        await wait_until(lambda: sync_redis.llen("resque:failed") == 1, what="failure entry")
    worker_id = worker.ids[0]

    assert await node_resque.queue("failedCount") == 1
    [entry] = await node_resque.queue("failed", 0, -1)
    assert entry["payload"] == {
        "class": "explode",
        "queue": "q",
        "args": ["tx/1", {"amount": "0.1", "note": "café"}, []],
    }
    assert entry["queue"] == "q"
    assert entry["exception"] == "ValueError"
    assert entry["error"] == "cannot handle ₿ payment 'tx/1'"
    assert entry["worker"] == worker_id
    assert isinstance(entry["backtrace"], list) and entry["backtrace"]

    assert await node_resque.queue("retryAndRemoveFailed", entry) is True

    assert sync_redis.llen("resque:failed") == 0
    assert sync_redis.lrange("resque:queue:q", 0, -1) == [raw]
    assert await failed_count(store) == 0


async def test_list_busy_payq_workers_in_node(
    node_resque: NodeResque, run_worker: RunWorker, store: Store, sync_redis: redis.Redis
) -> None:
    release = threading.Event()
    registry = Registry()
    registry.register(lambda *args: release.wait(10), "slow")
    try:
        async with run_worker(registry, concurrency=2) as worker:
            raws = [await enqueue(store, "q", "slow", [PAYMENT, n]) for n in (1, 2)]
            await wait_until(
                lambda: all(sync_redis.exists(f"resque:worker:{wid}") for wid in worker.ids), what="both slots busy"
            )

            workers = await node_resque.queue("workers")
            working = await node_resque.queue("allWorkingOn")
            record = await node_resque.queue("workingOn", "payqhost:4242+1", "q")
            release.set()
    finally:
        release.set()

    assert workers == {"payqhost:4242+1": "q", "payqhost:4242+2": "q"}
    assert set(working) == {"payqhost:4242+1", "payqhost:4242+2"}
    payloads = []
    for name, on in working.items():
        assert on["worker"] == name
        assert on["queue"] == "q"
        assert isinstance(on["run_at"], str) and on["run_at"]
        payloads.append(on["payload"])
    assert sorted(payloads, key=lambda p: p["args"][1]) == [orjson.loads(raw) for raw in raws]
    assert orjson.loads(record) == working["payqhost:4242+1"]


async def test_payq_lists_retries_and_removes_node_failures(
    node_resque: NodeResque, store: Store, sync_redis: redis.Redis
) -> None:
    await node_resque.queue("enqueue", "q", "boom", [{"id": "ripple:ABC", "memo": "naïve/äpfel"}])
    await node_resque.queue("enqueue", "q", "boom", [2, []])
    first_raw, _ = sync_redis.lrange("resque:queue:q", 0, -1)

    result = await node_resque.work("q", 2)

    assert [job["outcome"] for job in result["jobs"]] == ["failure", "failure"]
    failures = await list_failed(store, 0, 10)
    assert [f.job.args if f.job else None for f in failures] == [[{"id": "ripple:ABC", "memo": "naïve/äpfel"}], [2, []]]
    for failure in failures:
        assert failure.queue == "q"
        assert failure.exception == "Error"
        assert failure.error == "kaboom"
        assert failure.worker == result["name"]
        assert failure.failed_at is not None
        assert failure.backtrace

    retried = await retry_failed(store, 0, failures[0].digest)
    assert retried.job is not None and retried.job.class_name == "boom"
    assert sync_redis.lrange("resque:queue:q", 0, -1) == [first_raw]
    await remove_failed(store, 0, failures[1].digest)
    assert sync_redis.llen("resque:failed") == 0
    assert await node_resque.queue("failedCount") == 0


async def test_node_del_removes_payq_jobs(node_resque: NodeResque, store: Store, sync_redis: redis.Redis) -> None:
    for args in TRICKY_ARGS:
        await enqueue(store, "q", "pay", args)
    kept = await enqueue(store, "q", "pay", ["kept"])

    for args in TRICKY_ARGS:
        assert await node_resque.queue("del", "q", "pay", args) == 1

    assert sync_redis.lrange("resque:queue:q", 0, -1) == [kept]


async def test_delete_jobs_removes_node_and_ruby_jobs(
    node_resque: NodeResque, store: Store, sync_redis: redis.Redis
) -> None:
    args: list[JSONValue] = [{"id": "dogecoin:ff:0", "memo": "ünïcode/slash"}, []]
    await node_resque.queue("enqueue", "q", "pay", args)
    sync_redis.rpush("resque:queue:q", orjson.dumps({"class": "pay", "args": args}))  # Ruby Resque's format
    await node_resque.queue("enqueue", "q", "pay", ["other"])

    assert await delete_jobs(store, "q", "pay", args) == 2

    assert await node_resque.queue("queued", "q", 0, -1) == [{"class": "pay", "queue": "q", "args": ["other"]}]


async def test_node_stats_reads_payq_counters(
    node_resque: NodeResque, run_worker: RunWorker, store: Store, sync_redis: redis.Redis
) -> None:
    recorder = Recorder()
    registry = recorder.registry("pay")
    registry.register(explode, "explode")
    async with run_worker(registry) as worker:
        await enqueue(store, "q", "pay", [1])
        await enqueue(store, "q", "pay", [2])
        await enqueue(store, "q", "explode", [3])
        await wait_until(lambda: sync_redis.get("resque:stat:failed") == b"1", what="failure counted")
        await wait_until(lambda: sync_redis.get("resque:stat:processed") == b"2", what="jobs counted")
        worker_id = worker.ids[0]
        stats = await node_resque.queue("stats")
        payq_stats = await read_stats(store)

    assert stats == {
        "processed": "2",
        "failed": "1",
        f"processed:{worker_id}": "2",
        f"failed:{worker_id}": "1",
    }
    assert (payq_stats.processed, payq_stats.failed, payq_stats.failed_list) == (2, 1, 1)


async def test_recover_killed_node_worker_into_failure_node_can_retry(
    node_resque: NodeResque, run_worker: RunWorker, store: Store, sync_redis: redis.Redis
) -> None:
    args: list[JSONValue] = [{"id": "ripple:C0FFEE", "memo": "a/b"}, "2026/12/03"]
    await node_resque.queue("enqueue", "q", "hang", args)
    original = sync_redis.lindex("resque:queue:q", 0)
    node = await node_resque.start("worker.js", "q", "1")
    try:
        await wait_until(lambda: sync_redis.keys("resque:worker:*:q"), what="the node worker busy")
        [record_key] = sync_redis.keys("resque:worker:*:q")
    finally:
        node.kill()
        await node.wait()
    node_id = as_text(record_key).removeprefix("resque:worker:")

    async with run_worker(Registry(), queues=("other",)):
        await wait_until(lambda: sync_redis.llen("resque:failed") == 1, what="the dead node worker recovered")

    assert node_id not in {as_text(m) for m in sync_redis.smembers("resque:workers")}
    [failure] = await list_failed(store)
    assert (failure.exception, failure.queue, failure.worker) == ("DeadWorker", "q", node_id)
    assert failure.job is not None and failure.job.args == args
    [entry] = await node_resque.queue("failed", 0, -1)
    assert await node_resque.queue("retryAndRemoveFailed", entry) is True
    assert sync_redis.llen("resque:failed") == 0
    assert sync_redis.lrange("resque:queue:q", 0, -1) == [original]
