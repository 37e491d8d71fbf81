"""Recording webhook deliveries: each in one atomic step, and the deliveries of one moment in one round trip.

A delivery's step checks whether its Standard Webhooks id was seen before (a replay gets the answer
stored then), enqueues each confirmed payment unless its id was seen within the retention, and
stores the delivery's answer for later replays. The deliveries that reach this point in the same
turn of the event loop are sent as one script call (workers.batching), on a pipelined connection of
its own where the deployment allows (workers.pipe), so a burst of webhooks costs one round trip and
one reply to parse instead of one per delivery. Every delivery still gets its own
answer, built by Redis from fragments the intake prepared, and only once its jobs are in Redis.

While PAYQ_REDIS_WAIT_REPLICAS is set, deliveries are recorded one at a time instead (the intake
calls service.recording.record_observations), since WAIT vouches for the writes of one connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from service.bodies import Observation
from service.payments import Payment
from service.recording import Outcome, classify, payment_policy, pushed_outcome
from service.settings import NETWORKS, NetworkSettings, Settings
from workers.batching import Coalescer
from workers.codec import encode_job
from workers.connection import Store, as_bytes

# KEYS: the queues set, then per delivery: its delivery key when it is signed, then per confirmed
#       payment: its unique key and its queue list.
# ARGV: delivery retention (s), dedupe retention (s), wake channel, and the deliveries as one JSON
#       array (one argument instead of dozens: packing arguments is the client's costliest part).
#       Each delivery is [signed (1 or 0), answer head, answer tail, items], each item either
#       ["f", its answer fragment] or ["e", queue name, raw job, fragment if enqueued, fragment if a
#       duplicate].
# Returns per delivery {1, stored answer} for a signed delivery seen before, else
# {0, answer, {1 or 0 per confirmed payment}}. Each queue that got a job is added to the queues set
# and woken once.
RECORD_DELIVERIES = """
local results, woken = {}, {}
local k = 2
for d, delivery in ipairs(cjson.decode(ARGV[4])) do
  local signed, head, tail, items = delivery[1] == 1, delivery[2], delivery[3], delivery[4]
  local delivery_key, stored = nil, false
  if signed then
    delivery_key = KEYS[k]
    k = k + 1
    stored = redis.call('GET', delivery_key)
  end
  local parts, pushed = {}, {}
  for i, item in ipairs(items) do
    if item[1] == 'f' then
      parts[i] = item[2]
    else
      if not stored then
        local queue, raw = item[2], item[3]
        if redis.call('EXISTS', KEYS[k]) == 0 then
          -- The job first: should the push fail, the payment is not marked as enqueued either.
          redis.call('RPUSH', KEYS[k + 1], raw)
          redis.call('SET', KEYS[k], raw, 'EX', ARGV[2])
          woken[queue] = true
          parts[i] = item[4]
          pushed[#pushed + 1] = 1
        else
          parts[i] = item[5]
          pushed[#pushed + 1] = 0
        end
      end
      k = k + 2
    end
  end
  if stored then
    results[d] = {1, stored}
  else
    local answer = head .. table.concat(parts, ',') .. tail
    if signed then redis.call('SET', delivery_key, answer, 'NX', 'EX', ARGV[1]) end
    results[d] = {0, answer, pushed}
  end
end
for queue in pairs(woken) do
  redis.call('SADD', KEYS[1], queue)
  redis.call('PUBLISH', ARGV[3], queue)
end
return results
"""


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """What recording did: answered a replay from the stored answer, or recorded the outcomes."""

    replayed: bool
    answer: bytes
    outcomes: list[Outcome]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One delivery's part of the script call, and what its reply is matched against."""

    keys: list[str]
    spec: list[Any]  # its entry in the script's JSON argument
    classified: list[Outcome | tuple[Payment, NetworkSettings]]


class DeliveryRecorder:
    """Records deliveries for one app; concurrent calls share script calls."""

    def __init__(self, store: Store, settings: Settings, max_batch: int = 64) -> None:
        self.store = store
        self.settings = settings
        self._policy = payment_policy(settings)
        self._networks: dict[str, NetworkSettings] = {name: settings.network(name) for name in NETWORKS}
        self._queue_keys = {name: store.keys.queue(network.queue) for name, network in self._networks.items()}
        self._coalescer: Coalescer[None, _Prepared, DeliveryRecord] = Coalescer(self._send, max_batch)
        self._call = store.call_script(RECORD_DELIVERIES)

    async def record(
        self, webhook_id: str | None, observations: Sequence[Observation], answer_head: bytes, answer_tail: bytes
    ) -> DeliveryRecord:
        """Record a delivery: the replay check (signed deliveries only), every enqueue, the stored answer.

        The answer is ``answer_head``, the outcomes' JSON joined by commas, and ``answer_tail``. Raises
        redis.exceptions.RedisError when Redis is unreachable; then nothing of the delivery was recorded.
        """
        return await self._coalescer.submit(None, self._prepare(webhook_id, observations, answer_head, answer_tail))

    def _prepare(
        self, webhook_id: str | None, observations: Sequence[Observation], head: bytes, tail: bytes
    ) -> _Prepared:
        keys = self.store.keys
        script_keys = [] if webhook_id is None else [keys.delivery(webhook_id)]
        items: list[list[str]] = []
        classified: list[Outcome | tuple[Payment, NetworkSettings]] = []
        for observation in observations:
            item = classify(self._policy, observation)
            if isinstance(item, Outcome):
                items.append(["f", _fragment(item)])
                classified.append(item)
                continue
            network = self._networks[item.network]
            raw = encode_job(network.queue, network.job_class, [{**item.to_job_arg()}], plain=True)
            script_keys += [keys.unique(item.id), self._queue_keys[item.network]]
            enqueued, duplicate = (_fragment(pushed_outcome(item, network, pushed)) for pushed in (True, False))
            items.append(["e", network.queue, raw.decode(), enqueued, duplicate])
            classified.append((item, network))
        spec = [0 if webhook_id is None else 1, head.decode(), tail.decode(), items]
        return _Prepared(script_keys, spec, classified)

    async def _send(self, _: None, batch: list[_Prepared]) -> list[DeliveryRecord]:
        keys = self.store.keys
        script_keys = [keys.queues]
        for prepared in batch:
            script_keys += prepared.keys
        settings = self.settings
        args: list[str | bytes | int] = [
            settings.delivery_retention_s,
            settings.dedupe_retention_s,
            keys.wake_channel,
            orjson.dumps([prepared.spec for prepared in batch]),
        ]
        replies = await self._call(script_keys, args)
        return [_record(prepared, reply) for prepared, reply in zip(batch, replies, strict=True)]


def _fragment(outcome: Outcome) -> str:
    return orjson.dumps(outcome.to_json()).decode()


def _record(prepared: _Prepared, reply: list[Any]) -> DeliveryRecord:
    if int(reply[0]) == 1:
        return DeliveryRecord(True, as_bytes(reply[1]), [])
    flags = iter(reply[2])
    outcomes = [
        item if isinstance(item, Outcome) else pushed_outcome(*item, pushed=int(next(flags)) == 1)
        for item in prepared.classified
    ]
    return DeliveryRecord(False, as_bytes(reply[1]), outcomes)


async def load_delivery(store: Store, webhook_id: str) -> bytes | None:
    """The answer stored for a webhook delivery that was processed before, if any."""
    stored = await store.redis.get(store.keys.delivery(webhook_id))
    return None if stored is None else as_bytes(stored)


async def save_delivery(store: Store, webhook_id: str, answer: bytes, retention_s: int) -> bool:
    """Remember a processed delivery's answer; False when another request stored one first."""
    stored = await store.redis.set(store.keys.delivery(webhook_id), answer, nx=True, ex=retention_s)
    return bool(stored)
