"""Retries: a failed job goes back through the delayed queue with backoff before it is given up on.

Each job class has a ``RetryPolicy`` (declared with ``@job(..., retry=...)``, else the worker's
default, and overridable per class in the settings): how many attempts, an exponential backoff
with jitter and a cap, and which exceptions are worth retrying. A job may also raise
``RetryLater(delay_s)`` to be tried again after a delay of its choosing; that counts as an attempt.
When the attempts run out the job lands on the failed list, its entry carrying two extra members
(``attempts`` and ``history``) that resque-web and node-resque ignore and keep.

Where the attempt count lives. A retried job is delayed in node-resque's form, ``{"class","queue",
"args"}``, with the original ``args`` bytes spliced in unchanged, so its arguments are byte for byte
what was first enqueued. The count and the failure history are kept beside it, in a payq-only key
``<ns>:payq:retry:<fingerprint>``, the fingerprint being a hash of those job bytes. A field inside
the job JSON was ruled out: node-resque's scheduler re-encodes every job it moves from just
``class``, ``queue`` and ``args``, so any extra field would vanish whenever node-resque's scheduler
leads (and the job would be retried forever), and node-resque's ``scheduledAt``/``delDelayed``, which
look a job up by that same encoding, could no longer find payq's retries. The key survives either
scheduler, because node-resque's re-encoding of a job that payq (or node-resque) wrote gives back
the same bytes.

The price of a key per fingerprint: identical jobs (same class, queue and arguments) share one
count. payq's payment jobs carry the payment id and are enqueued once per id, so this only matters
for deliberately duplicated jobs, whose attempts then add up. The key expires a week after the
retry falls due, so a delayed retry deleted by hand leaves nothing behind for long.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import orjson

from workers.clock import ruby_failed_at, utcnow
from workers.codec import Job, JSONValue, MalformedJob, decode_job, dumps, encode_job, member_raw
from workers.connection import Store
from workers.delayed import timestamps_key
from workers.delayed_scripts import SETTLE
from workers.errors import UnknownJob
from workers.failures import failure_entry, format_backtrace

STATE_RETENTION_S = 7 * 24 * 3600
MAX_HISTORY = 25

_NEVER_RETRIED: tuple[type[BaseException], ...] = (MalformedJob, UnknownJob)


class RetryLater(Exception):
    """Raised by a job to be performed again after ``delay_s`` seconds (counts as an attempt)."""

    def __init__(self, delay_s: float, reason: str = "") -> None:
        super().__init__(reason or f"retry requested in {delay_s}s")
        self.delay_s = delay_s


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how soon a job class is retried. ``attempts=1`` means never retried."""

    attempts: int = 1
    backoff_s: float = 5.0
    backoff_cap_s: float = 3600.0
    jitter: float = 0.5
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")
        if self.backoff_s < 0 or self.backoff_cap_s < 0:
            raise ValueError("backoff cannot be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")

    def delay_s(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The wait after failed attempt ``attempt`` (1-based): doubling from ``backoff_s`` up to the
        cap, less a random share of up to ``jitter`` so that jobs failing together spread out."""
        full = min(self.backoff_cap_s, self.backoff_s * 2 ** (attempt - 1))
        return float(full * (1 - self.jitter * rand()))

    def retries(self, error: BaseException) -> bool:
        """Whether ``error`` is worth another attempt, attempts left aside."""
        if isinstance(error, _NEVER_RETRIED):
            return False
        return isinstance(error, (RetryLater, *self.retry_on))


NO_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class RetryOverride:
    """Per-class settings that replace parts of a job's declared policy (and its time limit)."""

    attempts: int | None = None
    backoff_s: float | None = None
    backoff_cap_s: float | None = None
    timeout_s: float | None = None

    def apply(self, policy: RetryPolicy) -> RetryPolicy:
        return replace(
            policy,
            attempts=policy.attempts if self.attempts is None else self.attempts,
            backoff_s=policy.backoff_s if self.backoff_s is None else self.backoff_s,
            backoff_cap_s=policy.backoff_cap_s if self.backoff_cap_s is None else self.backoff_cap_s,
        )


def resolve_policy(declared: RetryPolicy | None, default: RetryPolicy, override: RetryOverride | None) -> RetryPolicy:
    """The policy a class runs under: the settings' override over the job's own, else the default."""
    base = declared or default
    return override.apply(base) if override else base


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of a finished job."""

    recorded: bool
    attempt: int
    retry_at_s: int | None = None


def retry_form(job: Job, queue: str) -> bytes:
    """The job in node-resque's form with its ``args`` bytes exactly as stored."""
    # Stored in that form already, as payq and node-resque write jobs. The arguments are encoded as
    # they are: bytes equal to that encoding have the form, whatever their numbers look like.
    if job.queue == queue and job.raw == encode_job(queue, job.class_name, job.args, plain=True):
        return job.raw
    args_raw = member_raw(job.raw, "args")
    if args_raw is None or args_raw == b"null":
        args_raw = b"[]"
    elif not args_raw.startswith(b"["):
        args_raw = b"[" + args_raw + b"]"  # node-resque wraps a lone argument the same way
    return b'{"class":' + dumps(job.class_name) + b',"queue":' + dumps(queue) + b',"args":' + args_raw + b"}"


def fingerprint(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:32]


async def settle_job(
    store: Store,
    *,
    record_key: str,
    worker_id: str,
    queue: str,
    raw: bytes,
    error: BaseException | None,
    policy: RetryPolicy,
    clock: Callable[[], float] = time.time,
) -> Settled:
    """Record a finished job: processed, delayed for another attempt, or failed with its history.

    Returns ``recorded=False`` when the job's in-flight record had already gone (dead-worker
    recovery pushed the job back), in which case nothing is recorded.
    """
    keys = store.keys
    try:
        job: Job | None = decode_job(raw)
    except MalformedJob:
        job = None
    form = retry_form(job, queue) if job else raw
    state_key = keys.retry_state(fingerprint(form))
    counter = "processed" if error is None else "failed"
    mode, entry, retry_at_s, state = "ok", b"", 0, b""
    attempt = 1
    if error is not None:
        history = await _load_history(store, state_key)
        attempt = _last_attempt(history) + 1
        now = clock()
        delay_s = _next_delay(policy, error, attempt)
        record: dict[str, JSONValue] = {
            "attempt": attempt,
            "failed_at": ruby_failed_at(utcnow()),
            "exception": type(error).__name__,
            "error": str(error),
        }
        if job is not None and delay_s is not None:
            retry_at_s = math.ceil(now + delay_s)
            record["retry_at"] = retry_at_s
            mode, state = "retry", dumps(list[JSONValue]([*history, record][-MAX_HISTORY:]))
        else:
            mode, entry = "fail", _final_entry(raw, queue, worker_id, error, attempt, [*history, record])
    ttl_s = STATE_RETENTION_S + max(0, retry_at_s - int(clock()))
    done = await store.script(SETTLE)(
        keys=[
            record_key,
            keys.stat(counter),
            keys.stat(counter, worker_id),
            keys.failed,
            state_key,
            keys.delayed_schedule,
            keys.delayed(retry_at_s),
            timestamps_key(store, form),
        ],
        args=[mode, entry, form, retry_at_s, keys.delayed_member(retry_at_s), state, ttl_s],
    )
    return Settled(bool(done), attempt, retry_at_s if mode == "retry" else None)


def _next_delay(policy: RetryPolicy, error: BaseException, attempt: int) -> float | None:
    if attempt >= policy.attempts or not policy.retries(error):
        return None
    if isinstance(error, RetryLater):
        return max(0.0, error.delay_s)
    return policy.delay_s(attempt)


async def _load_history(store: Store, state_key: str) -> list[dict[str, JSONValue]]:
    stored = await store.redis.get(state_key)
    if not stored:
        return []
    try:
        history = orjson.loads(stored)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(history, list):
        return []
    return [h for h in history if isinstance(h, dict) and isinstance(h.get("attempt"), int)]


def _last_attempt(history: list[dict[str, JSONValue]]) -> int:
    last = history[-1]["attempt"] if history else 0
    return last if isinstance(last, int) else 0


def _final_entry(
    raw: bytes, queue: str, worker_id: str, error: BaseException, attempts: int, history: list[dict[str, JSONValue]]
) -> bytes:
    """A Ruby-style failure entry with ``attempts`` and ``history`` appended as extra members."""
    name = "MalformedJob" if isinstance(error, MalformedJob) else type(error).__name__
    entry = failure_entry(raw, queue, worker_id, name, str(error), format_backtrace(error))
    if attempts == 1:
        return entry
    extra = dumps({"attempts": attempts, "history": list[JSONValue](history[-MAX_HISTORY:])})
    return entry[:-1] + b"," + extra[1:]
