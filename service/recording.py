"""Recording what a webhook or a poller observed: each confirmed payment becomes exactly one job.

This is the part of the intake that the pollers share. It knows Redis and the settings but not
HTTP, so importing it does not import FastAPI. Redis errors propagate: a caller that sees one must
not acknowledge (the intake answers 503, a poller keeps its cursor) and simply tries again later,
since recording the same observations twice enqueues nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import orjson

from service.bodies import Observation, Status
from service.errors import PayqError
from service.networks import Network
from service.payments import Payment, PaymentPolicy
from service.settings import NetworkSettings, Settings
from workers.codec import JSONValue, encode_job
from workers.connection import Redis, Store, as_bytes
from workers.queues import enqueue_unique

logger = logging.getLogger(__name__)


class NotReplicated(PayqError):
    """Fewer Redis replicas than PAYQ_REDIS_WAIT_REPLICAS acknowledged the enqueued jobs in time."""


class Result(StrEnum):
    """What happened to one observation."""

    ENQUEUED = "enqueued"  # its job is in Redis now
    DUPLICATE = "duplicate"  # its job was enqueued before (the payment id was seen within the retention)
    PENDING = "pending"  # too few confirmations, or not final yet; a later report will enqueue it
    REJECTED = "rejected"  # will never be credited
    IGNORED = "ignored"  # pays nobody payq watches


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result for one observation: the payment id (or transaction ref) and what was done with it."""

    id: str
    result: Result
    reason: str = ""
    payment: Payment | None = None
    queue: str | None = None

    def to_json(self) -> dict[str, str | int]:
        """The JSON form the intake answers with, per payment."""
        answer: dict[str, str | int] = {"id": self.id, "status": self.result.value}
        if self.reason:
            answer["reason"] = self.reason
        if self.payment is not None:
            answer["confirmations"] = self.payment.confirmations
        if self.queue is not None:
            answer["queue"] = self.queue
        return answer


def payment_policy(settings: Settings) -> PaymentPolicy:
    """The confirmation policy the settings ask for."""
    return PaymentPolicy(
        bitcoin=settings.bitcoin_confirmations,
        dogecoin=settings.dogecoin_confirmations,
        ripple=settings.ripple_confirmations,
    )


async def record_observations(store: Store, settings: Settings, observations: Sequence[Observation]) -> list[Outcome]:
    """Enqueue each confirmed payment once (dedupe and enqueue are one atomic step) and say what became of each.

    With PAYQ_REDIS_WAIT_REPLICAS above 0, returns only once that many replicas hold the jobs, and
    raises NotReplicated otherwise. Raises redis.exceptions.RedisError when Redis is unreachable.
    """
    policy = payment_policy(settings)
    if settings.redis_wait_replicas > 0 and any(_is_enqueueable(o, policy) for o in observations):
        # WAIT counts the writes of its own connection, so the enqueues and the WAIT share one.
        single = store.redis.client()
        try:
            outcomes = await _record(Store(single, store.keys), settings, policy, observations)
            duplicates = [o.id for o in outcomes if o.result is Result.DUPLICATE]
            if duplicates:
                # A duplicate may be the retry of a request answered 503 because its job had not
                # reached enough replicas. A write on this connection, ordered after that job in the
                # replication stream, lets WAIT vouch for it too: refresh each duplicate's retention.
                async with single.pipeline(transaction=False) as pipe:
                    for payment_id in duplicates:
                        pipe.expire(store.keys.unique(payment_id), settings.dedupe_retention_s)
                    await pipe.execute()
            if duplicates or any(o.result is Result.ENQUEUED for o in outcomes):
                await _wait_for_replicas(single, settings)
        finally:
            await single.aclose()
        return outcomes
    return await _record(store, settings, policy, observations)


def _is_enqueueable(observation: Observation, policy: PaymentPolicy) -> bool:
    payment = observation.payment
    return observation.status is Status.PAYMENT and payment is not None and policy.is_confirmed(payment)


async def _record(
    store: Store, settings: Settings, policy: PaymentPolicy, observations: Sequence[Observation]
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for observation in observations:
        outcomes.append(await _record_one(store, settings, policy, observation))
    return outcomes


async def _record_one(store: Store, settings: Settings, policy: PaymentPolicy, observation: Observation) -> Outcome:
    classified = _classify(policy, observation)
    if isinstance(classified, Outcome):
        return classified
    network = settings.network(Network(classified.network).value)
    job_arg: dict[str, JSONValue] = {**classified.to_job_arg()}
    pushed = await enqueue_unique(
        store,
        network.queue,
        network.job_class,
        [job_arg],
        unique_key=classified.id,
        retention_s=settings.dedupe_retention_s,
    )
    return _pushed(classified, network, pushed)


def _classify(policy: PaymentPolicy, observation: Observation) -> Outcome | Payment:
    """The outcome of an observation that enqueues nothing, or the confirmed payment to enqueue."""
    payment = observation.payment
    if observation.status is Status.REJECTED:
        return Outcome(observation.ref, Result.REJECTED, observation.reason)
    if observation.status is Status.IGNORED:
        return Outcome(observation.ref, Result.IGNORED, observation.reason)
    if observation.status is Status.PENDING or payment is None:
        return Outcome(observation.ref, Result.PENDING, observation.reason, payment)
    if not policy.is_confirmed(payment):
        required = policy.required_confirmations(payment.network)
        reason = f"{payment.confirmations} of {required} confirmations"
        logger.info("payment pending id=%s confirmations=%s required=%s", payment.id, payment.confirmations, required)
        return Outcome(payment.id, Result.PENDING, reason, payment)
    return payment


def _pushed(payment: Payment, network: NetworkSettings, pushed: bool) -> Outcome:
    if not pushed:
        logger.info("payment duplicate id=%s queue=%s", payment.id, network.queue)
        return Outcome(payment.id, Result.DUPLICATE, "enqueued before", payment, network.queue)
    logger.info(
        "payment enqueued id=%s queue=%s class=%s source=%s request_id=%s",
        payment.id,
        network.queue,
        network.job_class,
        payment.source,
        payment.request_id,
    )
    return Outcome(payment.id, Result.ENQUEUED, "", payment, network.queue)


async def _wait_for_replicas(client: Redis, settings: Settings) -> None:
    wanted = settings.redis_wait_replicas
    acknowledged = int(await client.wait(wanted, settings.redis_wait_timeout_ms))
    if acknowledged < wanted:
        logger.warning("redis replicas lagging acknowledged=%s wanted=%s", acknowledged, wanted)
        raise NotReplicated(f"{acknowledged} of {wanted} Redis replicas acknowledged the jobs")


# Webhook deliveries ---------------------------------------------------------------------------------------


async def load_delivery(store: Store, webhook_id: str) -> bytes | None:
    """The answer stored for a webhook delivery that was processed before, if any."""
    stored = await store.redis.get(store.keys.delivery(webhook_id))
    return None if stored is None else as_bytes(stored)


async def save_delivery(store: Store, webhook_id: str, answer: bytes, retention_s: int) -> bool:
    """Remember a processed delivery's answer; False when another request stored one first."""
    stored = await store.redis.set(store.keys.delivery(webhook_id), answer, nx=True, ex=retention_s)
    return bool(stored)


# Record a signed delivery in one step: a delivery seen before gets its stored answer; otherwise each
# confirmed payment is enqueued unless its id was seen within the retention (what ENQUEUE_UNIQUE does
# for one payment), and the delivery's answer, assembled from the outcomes, is stored for replays.
# KEYS: delivery key, queues set, then per confirmed payment: unique key, queue list.
# ARGV: delivery retention (s), dedupe retention (s), wake channel, answer head, answer tail, item
#       count, then per item either 'f' and its answer fragment, or 'e', queue name, raw job, the
#       fragment when enqueued, the fragment when a duplicate.
# Returns {1, stored answer} for a delivery seen before, else {0, answer, {1 or 0 per confirmed payment}}.
RECORD_DELIVERY = """
local stored = redis.call('GET', KEYS[1])
if stored then return {1, stored} end
local parts, pushed = {}, {}
local k, a = 3, 7
for i = 1, tonumber(ARGV[6]) do
  if ARGV[a] == 'f' then
    parts[i] = ARGV[a + 1]
    a = a + 2
  else
    local queue, raw = ARGV[a + 1], ARGV[a + 2]
    if redis.call('SET', KEYS[k], raw, 'NX', 'EX', ARGV[2]) then
      redis.call('SADD', KEYS[2], queue)
      redis.call('RPUSH', KEYS[k + 1], raw)
      redis.call('PUBLISH', ARGV[3], queue)
      parts[i] = ARGV[a + 3]
      pushed[#pushed + 1] = 1
    else
      parts[i] = ARGV[a + 4]
      pushed[#pushed + 1] = 0
    end
    k, a = k + 2, a + 5
  end
end
local answer = ARGV[4] .. table.concat(parts, ',') .. ARGV[5]
redis.call('SET', KEYS[1], answer, 'NX', 'EX', ARGV[1])
return {0, answer, pushed}
"""


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """What one-step recording did: answered a replay from the stored answer, or recorded the outcomes."""

    replayed: bool
    answer: bytes
    outcomes: list[Outcome]


def records_in_one_step(settings: Settings) -> bool:
    """Whether a signed delivery can be recorded by ``record_delivery`` (not while waiting for replicas,
    which needs its own connection and a WAIT after the writes)."""
    return settings.redis_wait_replicas == 0


async def record_delivery(
    store: Store,
    settings: Settings,
    webhook_id: str,
    observations: Sequence[Observation],
    answer_head: bytes,
    answer_tail: bytes,
) -> DeliveryRecord:
    """Record a signed delivery in one round trip: replay check, every enqueue, and the stored answer.

    The answer is ``answer_head``, the outcomes' JSON joined by commas, and ``answer_tail``. Raises
    redis.exceptions.RedisError when Redis is unreachable.
    """
    policy = payment_policy(settings)
    keys = store.keys
    script_keys = [keys.delivery(webhook_id), keys.queues]
    items: list[str | bytes] = []
    classified = [_classify(policy, o) for o in observations]
    for item in classified:
        if isinstance(item, Outcome):
            items += ["f", orjson.dumps(item.to_json())]
            continue
        network = settings.network(Network(item.network).value)
        raw = encode_job(network.queue, network.job_class, [{**item.to_job_arg()}])
        script_keys += [keys.unique(item.id), keys.queue(network.queue)]
        enqueued = Outcome(item.id, Result.ENQUEUED, "", item, network.queue)
        duplicate = Outcome(item.id, Result.DUPLICATE, "enqueued before", item, network.queue)
        items += ["e", network.queue, raw, orjson.dumps(enqueued.to_json()), orjson.dumps(duplicate.to_json())]
    reply = await store.script(RECORD_DELIVERY)(
        keys=script_keys,
        args=[
            settings.delivery_retention_s,
            settings.dedupe_retention_s,
            keys.wake_channel,
            answer_head,
            answer_tail,
            len(classified),
            *items,
        ],
    )
    if int(reply[0]) == 1:
        return DeliveryRecord(True, as_bytes(reply[1]), [])
    flags = iter(int(flag) for flag in reply[2])
    outcomes = [
        item
        if isinstance(item, Outcome)
        else _pushed(item, settings.network(Network(item.network).value), next(flags) == 1)
        for item in classified
    ]
    return DeliveryRecord(False, as_bytes(reply[1]), outcomes)
