"""A Bitcoin Core / Dogecoin Core JSON-RPC client: auth, both error shapes, exact amounts, retries."""

from __future__ import annotations

import itertools
import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from pollers.backoff import Backoff, with_retries
from pollers.errors import (
    PollerConfigError,
    RpcAuthError,
    RpcError,
    RpcProtocolError,
    RpcUnavailable,
    RpcWarmingUp,
)

logger = logging.getLogger(__name__)

RPC_IN_WARMUP = -28
_BUSY_STATUSES = frozenset({429, 502, 503, 504})
_JSON_HEADERS = {"content-type": "application/json"}


def redact_url(url: str) -> str:
    """The URL without credentials or query, safe to log."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def read_cookie(path: Path) -> httpx.BasicAuth:
    """Read a Core ``.cookie`` file (``__cookie__:<hex>``) into Basic credentials."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RpcAuthError(f"cannot read the RPC cookie file {path}: {exc.strerror}") from exc
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise RpcAuthError(f"the RPC cookie file {path} does not hold user:password")
    return httpx.BasicAuth(user, password)


class CoreRpc:
    """Calls one Core wallet endpoint; credentials come from the URL or from a cookie file."""

    def __init__(
        self,
        url: str,
        *,
        cookie_file: Path | None = None,
        timeout_s: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise PollerConfigError(
                f"the RPC URL must be http(s)://[user:password@]host:port[/wallet/name], not {url!r}"
            )
        self.display_url = redact_url(url)
        self._url = parsed.copy_with(username=None, password=None)
        self._url_auth = httpx.BasicAuth(parsed.username, parsed.password) if parsed.username else None
        self._cookie_file = cookie_file
        self._cookie_auth: httpx.BasicAuth | None = None
        self._backoff = backoff or Backoff()
        self._ids = itertools.count(1)
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(self, method: str, *params: Any) -> Any:
        """Return the ``result`` of ``method``, retrying busy, unreachable and warming-up nodes."""
        return await with_retries(lambda: self._call_once(method, list(params)), self._backoff, what=method)

    async def _call_once(self, method: str, params: list[Any]) -> Any:
        response = await self._post(method, params)
        if response.status_code == httpx.codes.UNAUTHORIZED and self._cookie_file is not None:
            # The node writes a new cookie each time it starts: read it again once before giving up.
            self._cookie_auth = None
            response = await self._post(method, params)
        return self._result(method, response)

    async def _post(self, method: str, params: list[Any]) -> httpx.Response:
        # Legacy "1.0" requests are understood by every Core version, and Dogecoin 1.14 knows no other.
        payload = {"jsonrpc": "1.0", "id": f"payq-{next(self._ids)}", "method": method, "params": params}
        body = json.dumps(payload)
        try:
            auth = self._auth() or httpx.USE_CLIENT_DEFAULT
            return await self._client.post(self._url, content=body, headers=_JSON_HEADERS, auth=auth)
        except httpx.TimeoutException as exc:
            raise RpcUnavailable(f"{method} timed out at {self.display_url}") from exc
        except httpx.TransportError as exc:
            raise RpcUnavailable(f"{method} could not reach {self.display_url}: {type(exc).__name__}") from exc

    def _auth(self) -> httpx.BasicAuth | None:
        if self._cookie_file is None:
            return self._url_auth
        if self._cookie_auth is None:
            self._cookie_auth = read_cookie(self._cookie_file)
        return self._cookie_auth

    def _result(self, method: str, response: httpx.Response) -> Any:
        status = response.status_code
        if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            raise RpcAuthError(f"{self.display_url} refused the RPC credentials (HTTP {status})")
        try:
            body = json.loads(response.text, parse_float=Decimal)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if status in _BUSY_STATUSES:
                raise RpcUnavailable(f"{method} got HTTP {status}", retry_after_s=_retry_after(response))
            raise RpcProtocolError(f"{method} got HTTP {status} without a JSON-RPC object")
        error = body.get("error")
        if error is not None:
            raise _rpc_error(method, error)
        if status in _BUSY_STATUSES:
            raise RpcUnavailable(f"{method} got HTTP {status}", retry_after_s=_retry_after(response))
        if "result" not in body:
            raise RpcProtocolError(f"{method} reply has neither result nor error")
        return body["result"]


def _rpc_error(method: str, error: object) -> RpcError:
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return RpcError(method, 0, f"malformed error object {error!r}"[:200])
    code: int = error["code"]
    message = str(error.get("message", ""))[:200]
    if code == RPC_IN_WARMUP:
        return RpcWarmingUp(method, code, message)
    return RpcError(method, code, message)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
