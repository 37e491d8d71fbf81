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

from service.bodies import Observation, Status
from service.errors import PayqError
from service.networks import Network
from service.payments import Payment, PaymentPolicy
from service.settings import NetworkSettings, Settings
from workers.codec import JSONValue
from workers.connection import Redis, Store
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
    classified = classify(policy, observation)
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
    _log_pushed(classified, network, pushed)
    return pushed_outcome(classified, network, pushed)


def classify(policy: PaymentPolicy, observation: Observation) -> Outcome | Payment:
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


def pushed_outcome(payment: Payment, network: NetworkSettings, pushed: bool) -> Outcome:
    """The outcome of a confirmed payment: enqueued now, or a duplicate of one enqueued before."""
    if not pushed:
        return Outcome(payment.id, Result.DUPLICATE, "enqueued before", payment, network.queue)
    return Outcome(payment.id, Result.ENQUEUED, "", payment, network.queue)


def _log_pushed(payment: Payment, network: NetworkSettings, pushed: bool) -> None:
    if not pushed:
        logger.info("payment duplicate id=%s queue=%s", payment.id, network.queue)
        return
    logger.info(
        "payment enqueued id=%s queue=%s class=%s source=%s request_id=%s",
        payment.id,
        network.queue,
        network.job_class,
        payment.source,
        payment.request_id,
    )


async def _wait_for_replicas(client: Redis, settings: Settings) -> None:
    wanted = settings.redis_wait_replicas
    acknowledged = int(await client.wait(wanted, settings.redis_wait_timeout_ms))
    if acknowledged < wanted:
        logger.warning("redis replicas lagging acknowledged=%s wanted=%s", acknowledged, wanted)
        raise NotReplicated(f"{acknowledged} of {wanted} Redis replicas acknowledged the jobs")
