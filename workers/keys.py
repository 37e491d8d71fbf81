"""Every Redis key name payq reads or writes, built in one place.

The layout is Resque's: a namespace (``resque`` by default) joined to the key with ``:``. Keys that
only payq uses live under ``<ns>:payq:`` so other Resque clients never trip over them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one Resque namespace."""

    namespace: str = "resque"

    def key(self, *parts: str) -> str:
        """Join the namespace and ``parts`` with ``:``, dropping empty parts as node-resque does."""
        return ":".join([p for p in (self.namespace, *parts) if p.strip()])

    # queues
    @property
    def queues(self) -> str:
        return self.key("queues")

    def queue(self, name: str) -> str:
        return self.key("queue", name)

    @property
    def queue_prefix(self) -> str:
        return self.key("queue") + ":"

    # workers
    @property
    def workers(self) -> str:
        return self.key("workers")

    def worker(self, worker_id: str) -> str:
        return self.key("worker", worker_id)

    def worker_started(self, worker_id: str) -> str:
        return self.key("worker", worker_id, "started")

    def worker_ping(self, name: str) -> str:
        return self.key("worker", "ping", name)

    @property
    def heartbeats(self) -> str:
        return self.key("workers", "heartbeat")

    # stats
    def stat(self, name: str, worker_id: str = "") -> str:
        return self.key("stat", name, worker_id)

    # failures
    @property
    def failed(self) -> str:
        return self.key("failed")

    # delayed jobs (resque-scheduler layout)
    @property
    def delayed_schedule(self) -> str:
        return self.key("delayed_queue_schedule")

    def delayed(self, timestamp_s: int) -> str:
        return self.key("delayed", str(timestamp_s))

    def delayed_timestamps(self, raw_job: str) -> str:
        return self.key("timestamps", raw_job)

    @property
    def delayed_timestamps_prefix(self) -> str:
        """``timestamps:`` keys end in a job's raw bytes, so scripts append those to this prefix."""
        return self.key("timestamps") + ":"

    @staticmethod
    def delayed_member(timestamp_s: int) -> str:
        """The value a ``timestamps:<job>`` set holds for one time: ``delayed:<ts>``, without namespace."""
        return f"delayed:{timestamp_s}"

    @property
    def scheduler_lock(self) -> str:
        return self.key("resque_scheduler_leader_lock")

    # payq's own keys
    @property
    def wake_channel(self) -> str:
        """Pub/sub channel payq producers publish on so idle payq workers claim at once."""
        return self.key("payq", "wake")

    @property
    def recovery_lock(self) -> str:
        return self.key("payq", "recovery_lock")

    def unique(self, job_key: str) -> str:
        """Marks a uniquely enqueued job (a payment's id) for the dedupe retention."""
        return self.key("payq", "unique", job_key)

    def delivery(self, webhook_id: str) -> str:
        return self.key("payq", "delivery", webhook_id)

    def retry_state(self, fingerprint: str) -> str:
        """A job's attempt count and failure history while it waits to be retried."""
        return self.key("payq", "retry", fingerprint)

    def cursor(self, poller: str) -> str:
        return self.key("payq", "cursor", poller)

    def poller_lock(self, poller: str) -> str:
        """Held by the one poller process that polls ``poller`` (a network) at a time."""
        return self.key("payq", "poller", poller, "lock")

    def poller_tracked(self, poller: str) -> str:
        """Hash of payments a poller follows until they are final: payment id -> JSON record."""
        return self.key("payq", "poller", poller, "tracked")
