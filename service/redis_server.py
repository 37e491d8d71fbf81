"""A child ``redis-server`` process: the embedded Redis of ``payq dev``, and the test suite's."""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

INSTALL_HINT = "install it with `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)"


class RedisServerError(RuntimeError):
    """The child redis-server could not be started."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RedisServerError(f"redis-server was not found on PATH; {INSTALL_HINT}")
    return path


def _stop_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent process dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


class RedisServer:
    """A ``redis-server`` bound to 127.0.0.1 on its own port, stopped with :meth:`stop`."""

    def __init__(self, data_dir: Path, *, port: int | None = None, durable: bool = True, extra: tuple[str, ...] = ()):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.durable = durable
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        persistence = (
            # Every acknowledged write reaches the disk before Redis answers the next command.
            ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
            if self.durable
            else ["--appendonly", "no", "--save", ""]
        )
        return [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--loglevel", "warning",
            *persistence,
            *self.extra,
        ]  # fmt: skip

    def start(self, timeout_s: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "redis.log"
        with log.open("ab") as out:
            # Its own process group: Ctrl-C in a terminal signals the foreground group, and Redis must
            # outlive payq's graceful shutdown (jobs finishing, workers unregistering); stop() ends it.
            # Its own process group keeps a terminal's Ctrl-C away from Redis (payq stops it after
            # the worker has put back its jobs); the parent-death signal stops it if payq is killed.
            self.process = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
                preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisServerError(f"redis-server exited with {self.process.returncode}; see {log}")
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RedisServerError(f"redis-server did not answer on port {self.port} within {timeout_s}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
