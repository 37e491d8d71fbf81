"""RQ's side of the throughput benchmark, run with the scratch venv's Python.

``python rq_peer.py fill PORT COUNT`` enqueues COUNT trivial jobs on the "bench" queue; the worker
is RQ's own CLI (``rq worker --burst --worker-class rq.worker.SimpleWorker``), which imports
``rq_peer.noop`` from this folder.
"""

from __future__ import annotations

import sys

from redis import Redis
from rq import Queue


def noop() -> None:
    """The trivial job."""


def fill(port: int, count: int, batch: int = 1000) -> None:
    queue = Queue("bench", connection=Redis(port=port))
    for start in range(0, count, batch):
        size = min(batch, count - start)
        queue.enqueue_many([Queue.prepare_data("rq_peer.noop") for _ in range(size)])


if __name__ == "__main__":
    if sys.argv[1] != "fill":
        raise SystemExit("usage: rq_peer.py fill PORT COUNT")
    fill(int(sys.argv[2]), int(sys.argv[3]))
