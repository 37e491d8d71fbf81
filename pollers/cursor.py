"""A poller's durable state in Redis: its lock, its cursors, and the payments it follows until final.

One poller process per network works at a time: it holds ``poller_lock(<network>)`` (SET NX PX, a
random token, renewed on every cursor write). A cursor is written only by the lock's holder, in the
same atomic step that renews the lock, so a process that lost the lock can never move a cursor back.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pollers.errors import LockLost
from service.payments import Payment
from workers.connection import Store, as_text

# KEYS: lock, cursor.  ARGV: token, cursor value, lock ttl (ms).
# A lock that expired during a slow poll and that nobody took is taken back; one held by another
# process is not, and the cursor stays where that process put it.
_SAVE_CURSOR = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""

# KEYS: lock.  ARGV: token, ttl (ms).  Take a free lock or renew our own.
_HOLD_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: lock.  ARGV: token.
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Tracked:
    """A payment followed until final: as last seen, and whether payq has enqueued it."""

    payment: Payment
    enqueued: bool

    def dumps(self) -> str:
        return json.dumps({"payment": self.payment.to_job_arg(), "enqueued": self.enqueued}, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str) -> Tracked:
        record = json.loads(raw)
        return cls(Payment.model_validate(record["payment"]), bool(record["enqueued"]))


class PollerState:
    """Lock, cursors and tracked payments of one network's poller."""

    def __init__(self, store: Store, network: str, *, lock_ttl_ms: int = 30_000) -> None:
        self.store = store
        self.network = network
        self.lock_ttl_ms = lock_ttl_ms
        self.token = secrets.token_hex(16)
        keys = store.keys
        self._lock_key = keys.poller_lock(network)
        self._tracked_key = keys.poller_tracked(network)
        self._save = store.redis.register_script(_SAVE_CURSOR)
        self._hold = store.redis.register_script(_HOLD_LOCK)
        self._release = store.redis.register_script(_RELEASE_LOCK)

    def cursor_key(self, scope: str = "") -> str:
        """The cursor of the network, or of one scope within it (an XRP Ledger account)."""
        return self.store.keys.cursor(f"{self.network}:{scope}" if scope else self.network)

    # lock

    async def hold_lock(self) -> bool:
        """Take the lock if it is free or renew it if ours; False while another process holds it."""
        return bool(await self._hold(keys=[self._lock_key], args=[self.token, self.lock_ttl_ms]))

    async def release_lock(self) -> None:
        await self._release(keys=[self._lock_key], args=[self.token])

    # cursors

    async def load_cursor(self, scope: str = "") -> dict[str, Any] | None:
        raw = await self.store.redis.get(self.cursor_key(scope))
        if raw is None:
            return None
        value = json.loads(as_text(raw))
        return value if isinstance(value, dict) else None

    async def save_cursor(self, value: Mapping[str, Any], scope: str = "") -> None:
        """Write the cursor and renew the lock in one step; raise LockLost if another process holds the lock."""
        raw = json.dumps(dict(value), separators=(",", ":"), sort_keys=True)
        saved = await self._save(
            keys=[self._lock_key, self.cursor_key(scope)], args=[self.token, raw, self.lock_ttl_ms]
        )
        if not saved:
            raise LockLost(f"the {self.network} poller lock is held by another process")

    # tracked payments

    async def tracked(self) -> dict[str, Tracked]:
        records = await self.store.redis.hgetall(self._tracked_key)
        return {as_text(key): Tracked.loads(as_text(raw)) for key, raw in records.items()}

    async def track(self, record: Tracked) -> None:
        await self.store.redis.hset(self._tracked_key, record.payment.id, record.dumps())

    async def untrack(self, payment_id: str) -> None:
        await self.store.redis.hdel(self._tracked_key, payment_id)
