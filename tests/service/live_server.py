"""Run a payq app under uvicorn on a free loopback port, for tests that need a real HTTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from service.http import HTTP_PROTOCOL
from service.redis_server import free_port


@contextmanager
def serve(app: FastAPI, deadline_s: float = 15.0, log_level: str = "warning") -> Iterator[str]:
    """Serve ``app`` from a thread until the block ends, with payq's HTTP protocol; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level=log_level, ws="none", lifespan="on", http=HTTP_PROTOCOL
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    until = time.monotonic() + deadline_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > until:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
