"""A scripted rippled behind respx (JSON-RPC) and a fake WebSocket connection, in the documented shapes.

``account_tx`` follows reference/payment-sources.md §4.2: validated transactions of the account between
``ledger_index_min`` and ``ledger_index_max`` (-1 = the server's whole range), in ledger order when
``forward``, ``page_size`` per page with a ``{"ledger","seq"}`` marker on every page but the last.
Each reply is a fresh dict, since xrpl-py deletes ``result.status`` in place.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from xrpl.models.requests import AccountTx, Ledger, Subscribe
from xrpl.models.requests.request import Request
from xrpl.models.response import Response, ResponseStatus

RPC_URL = "http://rippled.test:5005/"
WATCHED = "rfdGuuVnq9juqWDV4W3LoLiNcW8g2hAXhN"
SENDER = "rH3PxjJPrrkvsATddBXkayjAyWR8xigaE8"
ISSUER = "rf1BiGeXwwQoi8Z2ueFYTEXSwuJYfV2Jpn"
FIXTURE_HASH = "6489E52A909208E371ACE82E19CAE59896C7F8BA40E7C36C5B8AA3C451914BED"


def tx_hash(n: int) -> str:
    return f"{n:064X}"


def entry(
    hash_: str = FIXTURE_HASH,
    ledger: int = 1969852,
    *,
    delivered: object = "20000000",
    destination: str = WATCHED,
    account: str = SENDER,
    tag: int | None = 42,
    result: str = "tesSUCCESS",
    flags: int = 0,
    deliver_max: object = None,
    kind: str = "Payment",
) -> dict[str, Any]:
    """An account_tx entry in the API v2 layout of FIXTURE XRPL-ACCTX-1."""
    tx: dict[str, Any] = {
        "Account": account, "DeliverMax": deliver_max if deliver_max is not None else delivered,
        "Destination": destination, "Fee": "12", "Flags": flags, "Sequence": 1969811, "TransactionType": kind,
        "ledger_index": ledger, "date": 783820741,
    }  # fmt: skip
    if tag is not None:
        tx["DestinationTag"] = tag
    return {
        "tx_json": tx,
        "meta": {
            "AffectedNodes": [],
            "TransactionIndex": 4,
            "TransactionResult": result,
            "delivered_amount": delivered,
        },
        "hash": hash_,
        "ledger_index": ledger,
        "ledger_hash": "0B6F44849E6D702D0CFB447FDBD7B603C269E9EEECE9176882EF376E0C9DFF6A",
        "close_time_iso": "2024-11-01T23:59:01Z",
        "validated": True,
    }


class Rippled:
    """The fake server's ledger: entries per account, and the latest validated ledger index."""

    def __init__(self, validated: int = 1969900, *, page_size: int = 200, earliest: int = 1969800) -> None:
        self.validated = validated
        self.earliest = earliest
        self.page_size = page_size
        self.entries: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.override: dict[str, Callable[[dict[str, Any]], httpx.Response | None]] = {}

    def add(self, *entries: dict[str, Any]) -> None:
        self.entries.extend(entries)

    def account_tx_calls(self) -> list[dict[str, Any]]:
        return [params for method, params in self.calls if method == "account_tx"]

    # the JSON-RPC side

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        method, params = body["method"], body["params"][0]
        self.calls.append((method, params))
        if method in self.override:
            answer = self.override[method](params)
            if answer is not None:
                return answer
        return httpx.Response(200, json={"result": self.result(method, params)})

    def result(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "ledger":
            return {"ledger_index": self.validated, "ledger_hash": "AB" * 32, "validated": True, "status": "success"}
        if method == "account_tx":
            return self._account_tx(params)
        if method == "subscribe":
            return {"status": "success"}
        return {"error": "unknownCmd", "request": params, "status": "error"}

    def _account_tx(self, params: dict[str, Any]) -> dict[str, Any]:
        low = params.get("ledger_index_min", -1)
        high = params.get("ledger_index_max", -1)
        low = self.earliest if low == -1 else low
        high = self.validated if high == -1 else high
        account = params["account"]
        matching = [
            e
            for e in self.entries
            if low <= e["ledger_index"] <= high and account in (e["tx_json"]["Account"], e["tx_json"]["Destination"])
        ]
        matching.sort(key=lambda e: e["ledger_index"], reverse=not params.get("forward", False))
        start = params["marker"]["seq"] if "marker" in params else 0
        page = matching[start : start + self.page_size]
        result: dict[str, Any] = {
            "account": account, "ledger_index_min": low, "ledger_index_max": high, "limit": self.page_size,
            "transactions": copy.deepcopy(page), "validated": True, "status": "success",
        }  # fmt: skip
        if start + self.page_size < len(matching):
            result["marker"] = {"ledger": page[-1]["ledger_index"], "seq": start + self.page_size}
        return result

    # the WebSocket side

    def respond(self, request: Request) -> Response:
        """Answer an xrpl-py request object, as a WebSocket client's ``request`` would."""
        params = request.to_dict()
        method = params.pop("method")
        self.calls.append((method, params))
        result = self.result(method, params)
        status = ResponseStatus.SUCCESS if result.pop("status") == "success" else ResponseStatus.ERROR
        return Response(status=status, result=result)


class FakeStream:
    """One WebSocket connection: answers requests from the Rippled, then pushes ``messages`` and closes."""

    def __init__(self, server: Rippled, messages: list[dict[str, Any]], on_exhausted: Callable[[], None]) -> None:
        self.server = server
        self.messages = messages
        self.on_exhausted = on_exhausted
        self.sent: list[Request] = []

    async def __aenter__(self) -> FakeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def request(self, request: Request) -> Response:
        self.sent.append(request)
        return self.server.respond(request)

    async def send(self, request: Request) -> None:
        self.sent.append(request)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[dict[str, Any]]:
        for message in self.messages:
            yield copy.deepcopy(message)
        self.on_exhausted()

    def subscribed(self) -> list[str]:
        return [a for r in self.sent if isinstance(r, Subscribe) for a in (r.accounts or [])]

    def backfills(self) -> list[AccountTx]:
        return [r for r in self.sent if isinstance(r, AccountTx)]

    def ledger_requests(self) -> int:
        return sum(isinstance(r, Ledger) for r in self.sent)


def stream_message(e: dict[str, Any]) -> dict[str, Any]:
    """The subscribe ``accounts`` stream shape (FIXTURE XRPL-STREAM-1) for an account_tx entry."""
    result = e["meta"]["TransactionResult"]
    return {**e, "type": "transaction", "engine_result": result, "engine_result_code": 0, "status": "closed"}
