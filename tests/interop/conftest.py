"""Fixtures for the node-resque interop tests: the Node scripts, and a payq worker in this process.

Nothing here skips: without ``node`` or ``tests/interop/node_modules`` the tests fail and say how to
install them (``scripts/setup --test`` does).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.redis_server import RedisServer
from workers.connection import Store
from workers.jobs import Registry
from workers.runtime import Worker, WorkerOptions

HERE = Path(__file__).resolve().parent
NAMESPACE = "resque"


@dataclass(frozen=True, slots=True)
class NodeResque:
    """Runs the node-resque scripts in this folder against one Redis and namespace."""

    node: str
    port: int
    namespace: str = NAMESPACE

    async def start(self, script: str, *args: str) -> asyncio.subprocess.Process:
        """Start a script without waiting for it; the caller ends it."""
        return await asyncio.create_subprocess_exec(
            self.node,
            str(HERE / script),
            str(self.port),
            self.namespace,
            *args,
            cwd=HERE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def _run(self, script: str, *args: str, timeout_s: float = 30.0) -> Any:
        proc = await asyncio.create_subprocess_exec(
            self.node,
            str(HERE / script),
            str(self.port),
            self.namespace,
            *args,
            cwd=HERE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise AssertionError(f"node {script} {' '.join(args)} exited {proc.returncode}: {err.decode()}")
        return orjson.loads(out)

    async def queue(self, method: str, *args: Any) -> Any:
        """Call a node-resque ``Queue`` method and return what it resolved to."""
        reply = await self._run("queue.js", method, orjson.dumps(list(args)).decode())
        return reply["result"]

    async def work(self, queues: str, count: int) -> dict[str, Any]:
        """Run a node-resque ``Worker`` on ``queues`` until ``count`` jobs finished.

        Returns ``{"name": worker name, "jobs": [{"outcome","queue","class","args"}, ...]}``.
        """
        result: dict[str, Any] = await self._run("worker.js", queues, str(count))
        return result


@pytest.fixture(scope="session")
def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; the interop tests need Node.js (run scripts/setup --test)", pytrace=False)
    if not (HERE / "node_modules" / "node-resque" / "package.json").is_file():
        pytest.fail(
            "tests/interop/node_modules is missing; run `npm ci` in tests/interop (scripts/setup --test does)",
            pytrace=False,
        )
    return node


@pytest.fixture
def node_resque(node_binary: str, redis_server: RedisServer, redis_url: str) -> NodeResque:
    """node-resque against the test's (emptied) Redis."""
    return NodeResque(node_binary, redis_server.port)


RunWorker = Callable[..., AbstractAsyncContextManager[Worker]]


@pytest.fixture
def run_worker(store: Store) -> RunWorker:
    """Start a payq Worker in this process with ``registry``; it is stopped when the block ends."""

    @asynccontextmanager
    async def running(registry: Registry, **overrides: Any) -> AsyncIterator[Worker]:
        settings: dict[str, Any] = {
            "queues": ("q",),
            "hostname": "payqhost",
            "pid": 4242,
            "poll_interval_s": 0.1,
            "heartbeat_interval_s": 0.2,
            "worker_timeout_s": 1.0,
            "shutdown_grace_s": 5.0,
        }
        settings.update(overrides)
        worker = Worker(store, registry, WorkerOptions(**settings))
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.started.wait(), 5)
        try:
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(task, 10)

    return running
