"""A scripted Bitcoin Core / Dogecoin Core wallet behind respx, answering in the documented shapes.

The fake keeps a chain of block hashes and a wallet of receive outputs, and answers
``listsinceblock``, ``getblockheader``, ``getblockhash`` and ``gettransaction`` the way
reference/payment-sources.md §1 describes them: ``lastblock`` N-1 below the tip, unconfirmed and
conflicted transactions always listed, ``removed`` only on Bitcoin, and Dogecoin's silent whole-history
answer to an unknown block hash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

URL = "http://core.test:8332/"
_NUMBER = re.compile(r'"__number__([0-9.\-]+)"')


def core_json(value: object) -> str:
    """JSON as Core writes it: amounts are bare numbers with eight decimals."""

    def number(item: object) -> str:
        if isinstance(item, Decimal):
            return f"__number__{item:.8f}"
        raise TypeError(type(item).__name__)

    return _NUMBER.sub(r"\1", json.dumps(value, default=number))


def txid(n: int) -> str:
    return f"{n:064x}"


def block_hash(label: str) -> str:
    return label.encode().hex().ljust(64, "0")[:64]


@dataclass
class WalletTx:
    txid: str
    outputs: list[tuple[int, str, Decimal]]
    block: str | None = None
    conflicted: bool = False
    history: list[str] = field(default_factory=list)  # blocks it was in that left the chain


class CoreNode:
    """The fake node; ``handle`` is the respx side effect."""

    def __init__(self, *, dogecoin: bool = False, blocks: int = 3) -> None:
        self.dogecoin = dogecoin
        self.chain = [block_hash(f"b{h}") for h in range(blocks)]
        self.stale: dict[str, int] = {}
        self.wallet: dict[str, WalletTx] = {}
        self.calls: list[tuple[str, list[Any]]] = []
        self.override: dict[str, Callable[[list[Any]], httpx.Response | None]] = {}

    # chain changes

    @property
    def tip(self) -> int:
        return len(self.chain) - 1

    def mine(self, *txids: str, label: str = "") -> str:
        block = block_hash(label or f"b{len(self.chain)}")
        self.chain.append(block)
        for tx in txids:
            self.wallet[tx].block = block
        return block

    def receive(self, tx: str, address: str, amount: str, vout: int = 0) -> None:
        wallet_tx = self.wallet.setdefault(tx, WalletTx(tx, []))
        wallet_tx.outputs.append((vout, address, Decimal(amount)))

    def reorg(self, depth: int) -> None:
        """Disconnect the top ``depth`` blocks; their transactions go back to the mempool."""
        for height in range(self.tip, self.tip - depth, -1):
            self.stale[self.chain[height]] = height
        gone = set(self.chain[-depth:])
        del self.chain[-depth:]
        for tx in self.wallet.values():
            if tx.block in gone:
                tx.history.append(tx.block)
                tx.block = None

    # answers

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        method, params = body["method"], body["params"]
        self.calls.append((method, params))
        if method in self.override:
            answer = self.override[method](params)
            if answer is not None:
                return answer
        try:
            result = getattr(self, f"_{method}")(*params)
        except _RpcFailure as failure:
            return legacy_error(failure.code, failure.message, body["id"])
        return httpx.Response(200, text=core_json({"result": result, "error": None, "id": body["id"]}))

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    def _height(self, block: str | None) -> int | None:
        return self.chain.index(block) if block in self.chain else None

    def _confirmations(self, tx: WalletTx) -> int:
        if tx.conflicted:
            return -1
        height = self._height(tx.block)
        return 0 if height is None else self.tip - height + 1

    def _entries(self, tx: WalletTx) -> list[dict[str, Any]]:
        confirmations = self._confirmations(tx)
        entries = []
        for vout, address, amount in tx.outputs:
            entry: dict[str, Any] = {
                "address": address, "category": "receive", "amount": amount, "vout": vout,
                "confirmations": confirmations, "txid": tx.txid, "walletconflicts": [], "time": 1718000000,
                "timereceived": 1718000000, "bip125-replaceable": "no",
            }  # fmt: skip
            if self.dogecoin:
                entry["account"] = ""
            else:
                entry["abandoned"] = False
            if confirmations > 0:
                entry.update(blockhash=tx.block, blockindex=1, blocktime=1718000000)
                if not self.dogecoin:
                    entry["blockheight"] = self._height(tx.block)
            entries.append(entry)
        return entries

    def _listsinceblock(self, block: str = "", target: int = 1, *rest: Any) -> dict[str, Any]:
        since: int = -1
        removed: list[dict[str, Any]] = []
        if block:
            if block in self.chain:
                since = self.chain.index(block)
            elif block in self.stale:
                since = min(self.stale.values()) - 1  # the fork point
                disconnected = {b for b, h in self.stale.items() if h <= self.stale[block]}
                for tx in self.wallet.values():
                    if disconnected & set(tx.history):
                        removed.extend(self._entries(tx))
            elif not self.dogecoin:
                raise _RpcFailure(-5, "Block not found")
            # Dogecoin 1.14: an unknown hash leaves since at -1, the whole history.
        transactions = []
        for tx in self.wallet.values():
            height = self._height(tx.block)
            if height is None or height > since:
                transactions.extend(self._entries(tx))
        result: dict[str, Any] = {"transactions": transactions, "lastblock": self.chain[max(self.tip - target + 1, 0)]}
        if not self.dogecoin:
            result["removed"] = removed
        return result

    def _getblockheader(self, block: str, *rest: Any) -> dict[str, Any]:
        if block in self.chain:
            height = self.chain.index(block)
            return {"hash": block, "height": height, "confirmations": self.tip - height + 1}
        if block in self.stale:
            return {"hash": block, "height": self.stale[block], "confirmations": -1}
        raise _RpcFailure(-5, "Block not found")

    def _getblockhash(self, height: int) -> str:
        if not 0 <= height <= self.tip:
            raise _RpcFailure(-8, "Block height out of range")
        return self.chain[height]

    def _gettransaction(self, tx_id: str, *rest: Any) -> dict[str, Any]:
        if tx_id not in self.wallet:
            raise _RpcFailure(-5, "Invalid or non-wallet transaction id")
        tx = self.wallet[tx_id]
        details = [{"address": a, "category": "receive", "amount": amt, "vout": v} for v, a, amt in tx.outputs]
        return {"txid": tx_id, "confirmations": self._confirmations(tx), "details": details}


class _RpcFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message


def legacy_error(code: int, message: str, request_id: object = "poll-1") -> httpx.Response:
    """BTC-ERR-1: a legacy (JSON-RPC 1.1) error, HTTP 500."""
    body = {"result": None, "error": {"code": code, "message": message}, "id": request_id}
    return httpx.Response(500, json=body)


def v2_error(code: int, message: str, request_id: object = "poll-1") -> httpx.Response:
    """BTC-ERR-2: a JSON-RPC 2.0 error, HTTP 200."""
    return httpx.Response(200, json={"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": request_id})
