"""``payq check``: health checks a container runtime can call (exit 0 when healthy)."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

from service.settings import Settings
from workers.connection import open_store
from workers.status import list_workers


def check_api(url: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    """Healthy when ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200, f"{url} answered {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url} did not answer: {exc}"


async def check_worker(settings: Settings, hostname: str | None = None) -> tuple[bool, str]:
    """Healthy when a worker on this host is registered and its heartbeat is fresh."""
    host = hostname or socket.gethostname()
    store = await open_store(settings.require_redis_url(), settings.namespace)
    try:
        workers = [w for w in await list_workers(store) if w.host == host]
    finally:
        await store.close()
    now = time.time()
    fresh = [w for w in workers if w.heartbeat and now - w.heartbeat.timestamp() < settings.worker_timeout_s]
    if fresh:
        return True, f"worker alive id={fresh[0].id}"
    if workers:
        return False, f"worker {workers[0].id} has not sent a heartbeat for {settings.worker_timeout_s}s"
    return False, f"no worker registered for host {host}"
