"""The pollers' exception tree: everything a poll can fail with, under one base."""

from __future__ import annotations


class PollerError(Exception):
    """A poll could not finish; ``retryable`` says whether trying again later may help."""

    retryable: bool = False


class PollerConfigError(PollerError):
    """A poller is missing a setting or was given one it cannot use."""


class RpcUnavailable(PollerError):
    """The node or server is busy, rate limiting, timing out or unreachable."""

    retryable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RpcAuthError(PollerError):
    """The node refused the credentials (HTTP 401 or 403), even after re-reading the cookie file."""


class RpcProtocolError(PollerError):
    """The reply is not the JSON-RPC shape payq expects."""


class RpcError(PollerError):
    """The node answered a call with a JSON-RPC error object."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method} failed with code {code}: {message}")
        self.method = method
        self.code = code
        self.message = message


class RpcWarmingUp(RpcError):
    """The node is still loading (code -28); the call will work later."""

    retryable = True


class LedgerError(PollerError):
    """An XRP Ledger server answered with an error result."""

    # rippled's universal "try later" errors; anything else needs a person.
    _TRANSIENT = frozenset({"tooBusy", "noCurrent", "noNetwork", "noClosed", "slowDown", "lgrNotFound"})

    def __init__(self, error: str, message: str | None = None) -> None:
        super().__init__(f"rippled answered {error}" + (f": {message}" if message else ""))
        self.error = error
        self.retryable = error in self._TRANSIENT


class LockLost(PollerError):
    """Another poller process took this network's lock; this one stops writing its cursor."""

    retryable = True
