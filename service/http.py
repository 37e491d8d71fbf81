"""The HTTP protocol payq's API serves with: uvicorn's httptools protocol, with a response's writes
gathered into one system call and one log line per webhook delivery.

uvicorn writes a response's status line and headers, then its body, each with a call of its own,
and uvloop sends each call at once: two system calls, two segments on the wire, and two wake-ups for
the client, per response. On loopback a send costs tens of microseconds, much of a small webhook's
whole cost. Gathering what one turn of the event loop writes halves that.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.intake import is_intake_request


class GatheredWrites:
    """A transport whose writes made in one turn of the event loop leave together, in one system call
    (a ``writelines``), when the turn is over.

    Closing sends what was gathered first; aborting drops it, as aborting the transport itself drops
    its buffer. Every other call goes to the transport underneath.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._gathered: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._gathered:
            self._loop.call_soon(self._send)
        self._gathered.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _send(self) -> None:
        gathered, self._gathered = self._gathered, []
        if gathered and not self._transport.is_closing():
            self._transport.writelines(gathered)

    def close(self) -> None:
        self._send()
        self._transport.close()

    def write_eof(self) -> None:
        self._send()
        self._transport.write_eof()

    def abort(self) -> None:
        self._gathered = []
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(chunk) for chunk in self._gathered)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GatheringHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through :class:`GatheredWrites`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(GatheredWrites(transport, self.loop))  # type: ignore[arg-type]


class PayqHttpProtocol(GatheringHttpToolsProtocol):
    """payq's protocol: gathered writes, and no access line for a webhook delivery, since the intake's
    own line for it (service.intake) names its status, client and time taken as well. Every other
    request keeps uvicorn's access line. Formatting and writing that second line cost about as much
    as verifying the delivery's signature."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        # The cycle is this request's unless uvicorn handed the connection to an upgrade instead.
        if cycle is not None and cycle.scope is self.scope and is_intake_request(self.scope):
            cycle.access_log = False


GATHERING_PROTOCOL = f"{__name__}:{GatheringHttpToolsProtocol.__name__}"
"""uvicorn's ``http`` setting for gathered writes alone (the bench's bare endpoint)."""

HTTP_PROTOCOL = f"{__name__}:{PayqHttpProtocol.__name__}"
"""uvicorn's ``http`` setting for payq's API: an import string, so that every worker process finds it."""
