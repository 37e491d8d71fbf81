"""Where pollers put what they find: the intake's dedupe+enqueue path, and reversals.

A payment is recorded with ``service.recording.record_observations``, the webhook intake's own
dedupe+enqueue step keyed by the payment id, so a payment reported by both (in any order, at the
same time) becomes one job. A reversal consumes that
same unique key: it is pushed only if the payment had been enqueued, at most once per enqueue, and a
payment that later comes back to the chain is enqueued afresh.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from service.bodies import Observation, Status
from service.payments import Payment
from service.recording import Result, record_observations
from service.settings import NetworkName, Settings
from workers.codec import JSONValue, encode_job
from workers.connection import Store

logger = logging.getLogger(__name__)

# KEYS: unique key of the payment, queues set, reversal queue list.  ARGV: queue name, raw job, wake channel.
_REVERSE = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
"""


@dataclass(frozen=True, slots=True)
class PaymentSink:
    """Enqueues one network's payments (through the intake's path) and reversals."""

    store: Store
    settings: Settings
    network: NetworkName

    @property
    def queue(self) -> str:
        return self.settings.network(self.network).queue

    @property
    def reversal_queue(self) -> str:
        return f"{self.network}:reversed"

    @property
    def reversal_job_class(self) -> str:
        job_class: str = getattr(self.settings, f"{self.network}_reversal_job_class", "log")
        return job_class

    async def record(self, payment: Payment) -> bool:
        """Enqueue a confirmed ``payment`` unless its id was enqueued already; True if this call enqueued it."""
        observation = Observation(Status.PAYMENT, payment.id, payment)
        [outcome] = await record_observations(self.store, self.settings, [observation])
        return outcome.result is Result.ENQUEUED

    async def reverse(self, payment: Payment) -> bool:
        """Enqueue a reversal of ``payment`` if it had been enqueued; True if this call did."""
        keys = self.store.keys
        raw = encode_job(self.reversal_queue, self.reversal_job_class, [_job_arg(payment)])
        pushed = await self.store.script(_REVERSE)(
            keys=[keys.unique(payment.id), keys.queues, keys.queue(self.reversal_queue)],
            args=[self.reversal_queue, raw, keys.wake_channel],
        )
        return bool(pushed)


def _job_arg(payment: Payment) -> JSONValue:
    return cast("JSONValue", payment.to_job_arg())
