"""Jobs for the tests that run real ``payq worker`` processes (``PAYQ_JOBS=tests.workers.sample_jobs``).

Each job leaves its mark in the Redis at ``SAMPLE_JOBS_REDIS_URL`` (else ``PAYQ_REDIS_URL``),
outside the Resque namespace, so a test can see what a worker process did: ``record`` pushes its id
to ``payq-test:done``; ``hold`` pushes its id to ``payq-test:started``, waits until the test sets
``payq-test:release``, then pushes its id to ``payq-test:done``; ``slow`` is ``hold`` with half a
second of work instead of the wait.
"""

from __future__ import annotations

import os
import time
from functools import cache

import redis

from workers.jobs import job

STARTED = "payq-test:started"
DONE = "payq-test:done"
RELEASE = "payq-test:release"
HOLD_LIMIT_S = 30.0


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ.get("SAMPLE_JOBS_REDIS_URL") or os.environ["PAYQ_REDIS_URL"])


@job("record")
def record(job_id: str) -> None:
    """Note that the job ran."""
    _client().rpush(DONE, job_id)


@job("hold")
def hold(job_id: str) -> None:
    """Note the start, wait for the test's release, note the end."""
    client = _client()
    client.rpush(STARTED, job_id)
    deadline = time.monotonic() + HOLD_LIMIT_S
    while not client.exists(RELEASE):
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} was never released")
        time.sleep(0.02)
    client.rpush(DONE, job_id)


@job("slow")
def slow(job_id: str) -> None:
    """Note the start, work for half a second, note the end."""
    client = _client()
    client.rpush(STARTED, job_id)
    time.sleep(0.5)
    client.rpush(DONE, job_id)
