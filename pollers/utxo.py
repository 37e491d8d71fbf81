"""The Bitcoin and Dogecoin poller: ``listsinceblock`` from a durable cursor, confirmations, reorgs.

One poll:

1. Check the cursor block is known to the node (``getblockheader``). Dogecoin 1.14 answers an unknown
   ``listsinceblock`` hash with the whole wallet history and no error, so an unknown cursor is never
   passed on: payq rescans from a block a safe depth below the cursor's stored height instead.
2. ``listsinceblock cursor N`` with N the required confirmations: every receive output to a watched
   address becomes a payment, enqueued once it has N confirmations. The node keeps re-reporting a
   transaction with fewer than N confirmations until it has them, because its ``lastblock`` stays
   N-1 blocks below the tip.
3. Payments are followed (``poller_tracked``) until they are ``reorg_depth`` blocks past N. Any that
   the reply did not mention, and every Bitcoin ``removed`` entry, is re-checked with
   ``gettransaction``; one that has left the chain and had been enqueued is reversed.
4. Only then is ``lastblock`` stored as the new cursor, so a poller stopped at any point repeats
   the poll, and every step of it is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pollers.cursor import PollerState, Tracked
from pollers.errors import LockLost, RpcError, RpcProtocolError
from pollers.record import PaymentSink
from pollers.rpc import CoreRpc
from service.addresses import validate_address
from service.amounts import parse_amount
from service.errors import InvalidPayment
from service.networks import Chain, Network
from service.payments import Payment, utxo_payment

logger = logging.getLogger(__name__)

RPC_INVALID_ADDRESS_OR_KEY = -5  # "Block not found", "Invalid or non-wallet transaction id"


@dataclass(frozen=True, slots=True)
class UtxoConfig:
    """What one Bitcoin or Dogecoin poller watches and how sure it must be."""

    network: Network
    chain: Chain
    watched: frozenset[str]
    required: int
    since: str | None = None
    reorg_depth: int = 6


@dataclass(slots=True)
class PollReport:
    """What one poll did, for logs and tests."""

    found: int = 0
    enqueued: int = 0
    reversed: int = 0


class UtxoPoller:
    """Finds payments to watched addresses through a Core wallet's JSON-RPC."""

    def __init__(
        self,
        config: UtxoConfig,
        rpc: CoreRpc,
        state: PollerState,
        sink: PaymentSink,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.rpc = rpc
        self.state = state
        self.sink = sink
        self._clock = clock

    @property
    def final_confirmations(self) -> int:
        return max(self.config.required, 1) + self.config.reorg_depth

    async def poll_once(self) -> PollReport:
        """Run one poll; the cursor moves only after everything the reply covers is in Redis."""
        if not await self.state.hold_lock():
            raise LockLost(f"the {self.config.network} poller lock is held by another process")
        report = PollReport()
        start = await self._start_block()
        target = max(self.config.required, 1)
        reply = await self.rpc.call("listsinceblock", start, target, True)
        if not isinstance(reply, dict) or not isinstance(reply.get("lastblock"), str):
            raise RpcProtocolError("listsinceblock reply has no lastblock")

        tracked = await self.state.tracked()
        seen: set[str] = set()
        for entry in _entries(reply, "transactions"):
            payment = self._payment(entry)
            if payment is None:
                continue
            if self._may_have_left(entry, tracked.get(payment.id)):
                continue  # the re-check below decides
            seen.add(payment.id)
            await self._observe(payment, tracked, report)

        recheck: dict[str, Tracked] = {
            payment_id: record for payment_id, record in tracked.items() if payment_id not in seen
        }
        for entry in _entries(reply, "removed"):
            payment = self._payment(entry)
            if payment is not None and payment.id not in seen:
                # It was in a block that is no longer on the chain.
                confirmed = payment.model_copy(update={"confirmations": max(payment.confirmations, 1)})
                recheck.setdefault(payment.id, Tracked(confirmed, enqueued=False))
        await self._recheck(recheck, tracked, report)

        lastblock: str = reply["lastblock"]
        header = await self.rpc.call("getblockheader", lastblock)
        await self.state.save_cursor({"block": lastblock, "height": _height(header)})
        logger.debug(
            "poll done network=%s lastblock=%s found=%s enqueued=%s reversed=%s",
            self.config.network, lastblock, report.found, report.enqueued, report.reversed,
        )  # fmt: skip
        return report

    @staticmethod
    def _may_have_left(entry: Mapping[str, Any], previous: Tracked | None) -> bool:
        """Conflicted, abandoned, or back in the mempool after being in a block."""
        confirmations = entry.get("confirmations", 0)
        if confirmations < 0 or entry.get("abandoned") is True:
            return True
        return confirmations == 0 and previous is not None and previous.payment.confirmations > 0

    # cursor

    async def _start_block(self) -> str:
        """The block to list from; "" lists the whole history the wallet holds."""
        cursor = await self.state.load_cursor()
        if cursor is None:
            return await self._since_block()
        block = str(cursor.get("block", ""))
        if await self._block_header(block) is not None:
            return block
        height = cursor.get("height")
        if not isinstance(height, int):
            logger.warning("cursor block unknown to the node, reading full history network=%s block=%s",
                           self.config.network, block)  # fmt: skip
            return ""
        rescan_height = max(height - self.final_confirmations, 0)
        logger.warning(
            "cursor block unknown to the node, rescanning network=%s block=%s from_height=%s",
            self.config.network, block, rescan_height,
        )  # fmt: skip
        try:
            return str(await self.rpc.call("getblockhash", rescan_height))
        except RpcError:
            logger.warning("rescan height unknown to the node, reading full history network=%s height=%s",
                           self.config.network, rescan_height)  # fmt: skip
            return ""

    async def _since_block(self) -> str:
        since = self.config.since
        if since is None:
            logger.info("no cursor yet, reading full wallet history network=%s", self.config.network)
            return ""
        if since.isdigit():
            return str(await self.rpc.call("getblockhash", int(since)))
        if await self._block_header(since) is None:
            raise RpcError("getblockheader", RPC_INVALID_ADDRESS_OR_KEY, f"--since block {since} is unknown")
        return since

    async def _block_header(self, block: str) -> Mapping[str, Any] | None:
        try:
            header = await self.rpc.call("getblockheader", block)
        except RpcError as exc:
            if exc.code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise
        return header if isinstance(header, dict) else None

    # payments

    def _payment(self, entry: Mapping[str, Any]) -> Payment | None:
        """The payment an entry describes, if it is a receive to a watched address."""
        if entry.get("category") != "receive" or "address" not in entry:
            return None
        network, txid = self.config.network, entry.get("txid")
        try:
            address = validate_address(network, self.config.chain, entry["address"])
            if address not in self.config.watched:
                return None
            amount = entry.get("amount")
            if not isinstance(amount, Decimal | int) or isinstance(amount, bool):
                raise InvalidPayment("amount", "must be a JSON number")
            confirmations = entry.get("confirmations")
            if not isinstance(confirmations, int) or isinstance(confirmations, bool):
                raise InvalidPayment("confirmations", "must be an integer")
            return utxo_payment(
                network,
                txid=str(txid),
                output_index=int(entry["vout"]),
                address=address,
                amount=parse_amount(f"{Decimal(amount):f}", network),
                confirmations=max(confirmations, 0),
                source="poller",
                received_at=self._clock(),
            )
        except (InvalidPayment, KeyError, TypeError, ValueError) as exc:
            logger.error("wallet entry skipped, not a valid payment network=%s txid=%s error=%s", network, txid, exc)
            return None

    async def _observe(self, payment: Payment, tracked: dict[str, Tracked], report: PollReport) -> None:
        """Enqueue a payment with enough confirmations; follow it until it is final."""
        previous = tracked.get(payment.id)
        confirmed = payment.confirmations >= self.config.required
        enqueued = previous is not None and previous.enqueued
        if confirmed and not enqueued:
            new = await self.sink.record(payment)
            enqueued = True
            report.found += 1
            report.enqueued += int(new)
            logger.info(
                "payment found network=%s id=%s address=%s amount=%s confirmations=%s enqueued=%s",
                payment.network, payment.id, payment.address, payment.amount, payment.confirmations,
                "yes" if new else "already",
            )  # fmt: skip
        elif previous is None:
            report.found += 1
            logger.info(
                "payment found network=%s id=%s address=%s amount=%s confirmations=%s required=%s enqueued=not-yet",
                payment.network, payment.id, payment.address, payment.amount, payment.confirmations,
                self.config.required,
            )  # fmt: skip
        if payment.confirmations < self.final_confirmations:
            record = Tracked(payment, enqueued)
            await self.state.track(record)
            tracked[payment.id] = record
        elif previous is not None:
            await self.state.untrack(payment.id)
            tracked.pop(payment.id, None)

    async def _recheck(self, recheck: dict[str, Tracked], tracked: dict[str, Tracked], report: PollReport) -> None:
        """Ask the node about payments the reply did not settle; reverse those that left the chain."""
        by_txid: dict[str, list[Tracked]] = {}
        for record in recheck.values():
            by_txid.setdefault(str(record.payment.txid), []).append(record)
        for txid, records in sorted(by_txid.items()):
            now = await self._confirmations(txid)
            for record in records:
                before = record.payment.confirmations
                if now is None or now < 0 or (now == 0 and before > 0):
                    await self._left_chain(record.payment, now, report)
                    tracked.pop(record.payment.id, None)
                else:
                    await self._observe(record.payment.model_copy(update={"confirmations": now}), tracked, report)

    async def _confirmations(self, txid: str) -> int | None:
        """A wallet transaction's confirmations (negative when conflicted), or None if the node lost it."""
        try:
            tx = await self.rpc.call("gettransaction", txid, True)
        except RpcError as exc:
            if exc.code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise
        confirmations = tx.get("confirmations") if isinstance(tx, dict) else None
        if not isinstance(confirmations, int) or isinstance(confirmations, bool):
            raise RpcProtocolError(f"gettransaction {txid} reply has no confirmations")
        if tx.get("abandoned") is True:
            return None
        return confirmations

    async def _left_chain(self, payment: Payment, now: int | None, report: PollReport) -> None:
        reversed_ = await self.sink.reverse(payment)
        await self.state.untrack(payment.id)
        if reversed_:
            report.reversed += 1
            logger.warning(
                "payment left the chain, reversal enqueued network=%s id=%s amount=%s confirmations=%s queue=%s",
                payment.network, payment.id, payment.amount, now, self.sink.reversal_queue,
            )  # fmt: skip
        else:
            logger.info("payment left the chain before it was enqueued network=%s id=%s confirmations=%s",
                        payment.network, payment.id, now)  # fmt: skip


def _entries(reply: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = reply.get(key) or []
    if not isinstance(value, list):
        raise RpcProtocolError(f"listsinceblock {key} is not a list")
    return [entry for entry in value if isinstance(entry, dict)]


def _height(header: object) -> int | None:
    height = header.get("height") if isinstance(header, dict) else None
    return height if isinstance(height, int) else None
