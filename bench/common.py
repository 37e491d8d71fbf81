"""What every benchmark shares: the scratch folder, child processes, Redis, clocks and medians."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCRATCH = BENCH / ".scratch"
LOGS = SCRATCH / "logs"
PEER_PYTHON = SCRATCH / "py" / "bin" / "python"
NODE_DIR = SCRATCH / "node"
PAYQ = ROOT / ".venv" / "bin" / "payq"
PYTHON = Path(sys.executable)

sys.path.insert(0, str(ROOT))

from service.redis_server import RedisServer, free_port  # noqa: E402


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Children:
    """Child processes started by the bench, each in its own process group, all stopped at the end."""

    running: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        LOGS.mkdir(parents=True, exist_ok=True)
        log = (LOGS / f"{name}.log").open("ab")
        child = subprocess.Popen(
            list(argv),
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.running.append(child)
        return child

    def stop(self, child: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        if child in self.running:
            self.running.remove(child)

    def stop_all(self) -> None:
        for child in list(self.running):
            self.stop(child, grace_s=5.0)


def start_redis(children: Children) -> tuple[RedisServer, redis.Redis]:
    """A non-durable redis-server of the bench's own on a free loopback port."""
    data = SCRATCH / "redis"
    data.mkdir(parents=True, exist_ok=True)
    server = RedisServer(data, durable=False)
    server.start()
    client = redis.Redis(port=server.port)
    client.config_set("save", "")
    return server, client


def wait_until(condition: Callable[[], bool], deadline_s: float, interval_s: float = 0.02) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


def wait_for_port(port: int, deadline_s: float = 20.0) -> bool:
    import socket

    def listening() -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    return wait_until(listening, deadline_s, 0.05)


async def on_schedule(count: int, rate: float) -> AsyncIterator[int]:
    """Yield 0 to ``count - 1``, number ``n`` at ``start + n / rate`` or as soon after as the loop gets to
    it: an open-loop load, whose next send never waits for an answer to the last."""
    start = time.monotonic()
    for seq in range(count):
        delay = start + seq / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield seq


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time ``pid`` has used so far, user and system, in seconds (to the clock tick)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_rss_kib(pid: int) -> int:
    """RSS of ``pid`` plus its children (a CLI that execs a worker keeps the work in a child)."""
    total = rss_kib(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(tree_rss_kib(int(c)) for c in children)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    load = os.getloadavg()
    return f"{cpu}, {os.cpu_count()} cores, {mem_kib / 1024 / 1024:.0f} GiB RAM, load {load[0]:.2f} at start"


__all__ = ["Children", "free_port", "start_redis"]
