from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx
import orjson
import pytest
import redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from service.app import create_app
from service.http import GatheredWrites
from tests.service.intake_client import TOKEN, intake_settings, utxo_body
from tests.service.live_server import serve


class Recorded:
    """A transport that notes each call that would reach the socket."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[bytes]]] = []
        self.closing = False
        self.buffered = 0

    def write(self, data: bytes) -> None:
        self.calls.append(("write", [data]))

    def writelines(self, chunks: list[bytes]) -> None:
        self.calls.append(("writelines", list(chunks)))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", []))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", []))

    def write_eof(self) -> None:
        self.calls.append(("write_eof", []))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8080) if name == "sockname" else default


def gathered(transport: Recorded) -> GatheredWrites:
    return GatheredWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_writes_made_in_one_turn_leave_together_when_the_turn_ends() -> None:
    transport = Recorded()
    writes = gathered(transport)

    writes.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
    writes.write(memoryview(b'{"status":"accepted"}'))
    writes.write(b"")
    assert transport.calls == []
    await asyncio.sleep(0)

    assert transport.calls == [("writelines", [b"HTTP/1.1 202 Accepted\r\n\r\n", b'{"status":"accepted"}'])]
    writes.writelines([b"next", b" turn"])
    await asyncio.sleep(0)
    assert transport.calls[1:] == [("writelines", [b"next", b" turn"])]


async def test_closing_sends_what_was_gathered_first_and_aborting_drops_it() -> None:
    closed, aborted = Recorded(), Recorded()
    closing, aborting = gathered(closed), gathered(aborted)

    closing.write(b"last answer")
    closing.close()
    aborting.write(b"never sent")
    aborting.abort()
    await asyncio.sleep(0)

    assert closed.calls == [("writelines", [b"last answer"]), ("close", [])]
    assert aborted.calls == [("abort", [])]


async def test_write_eof_sends_what_was_gathered_first() -> None:
    transport = Recorded()
    writes = gathered(transport)

    writes.write(b"body")
    writes.write_eof()

    assert transport.calls == [("writelines", [b"body"]), ("write_eof", [])]


async def test_nothing_is_sent_to_a_transport_that_closed_before_the_turn_ended() -> None:
    transport = Recorded()
    writes = gathered(transport)

    writes.write(b"too late")
    transport.closing = True  # the peer went away within the turn
    await asyncio.sleep(0)

    assert transport.calls == []


async def test_the_write_buffer_size_counts_what_was_gathered_and_other_calls_pass_through() -> None:
    transport = Recorded()
    transport.buffered = 10
    writes = gathered(transport)

    writes.write(b"12345")

    assert writes.get_write_buffer_size() == 15
    assert writes.get_extra_info("sockname") == ("127.0.0.1", 8080)
    await asyncio.sleep(0)
    assert writes.get_write_buffer_size() == 10


def test_the_gathering_protocol_serves_keep_alive_requests_and_closes_after_its_last_answer() -> None:
    app = FastAPI()

    @app.get("/echo/{n}")
    async def echo(n: int) -> JSONResponse:
        return JSONResponse({"n": n, "pad": "x" * n})

    with serve(app) as url, httpx.Client(base_url=url) as client:  # the live server uses payq's protocol
        answers = [client.get(f"/echo/{n}") for n in (1, 500, 70_000)]
        last = client.get("/echo/2", headers={"Connection": "close"})

    assert [a.json()["n"] for a in answers] == [1, 500, 70_000]
    assert len(answers[2].json()["pad"]) == 70_000
    assert last.status_code == 200 and last.json() == {"n": 2, "pad": "xx"}
    assert last.headers["connection"] == "close"


def test_a_webhook_delivery_logs_one_line_naming_its_client_and_time_and_other_requests_keep_the_access_line(
    redis_url: str, sync_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(intake_settings(redis_url))
    access_logger = logging.getLogger("uvicorn.access")  # uvicorn's own log configuration keeps it from the root
    try:
        with serve(app, log_level="info") as url, httpx.Client(base_url=url) as client:
            access_logger.addHandler(caplog.handler)
            accepted = client.post(f"/payments/bitcoin?token={TOKEN}", content=orjson.dumps(utxo_body()))
            refused = client.post("/payments/bitcoin", content=b"{}")
            health = client.get("/healthz")
            port = client.get("/healthz").extensions["network_stream"].get_extra_info("client_addr")[1]
    finally:
        access_logger.removeHandler(caplog.handler)

    assert (accepted.status_code, refused.status_code, health.status_code) == (202, 401, 200)
    assert sync_redis.llen("resque:queue:bitcoin:incoming") == 1
    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert access == [f'127.0.0.1:{port} - "GET /healthz HTTP/1.1" 200'] * 2
    intake = [r.getMessage() for r in caplog.records if r.name == "service.intake"]
    assert len(intake) == 2
    assert re.fullmatch(
        rf"webhook accepted request_id={accepted.headers['x-request-id']} network=bitcoin status=202 "
        rf"client=127\.0\.0\.1:{port} ms=\d+\.\d auth=token webhook_id=None enqueued=1 .*",
        intake[0],
    )
    assert re.fullmatch(
        rf"webhook refused request_id={refused.headers['x-request-id']} network=bitcoin status=401 "
        rf"client=127\.0\.0\.1:{port} ms=\d+\.\d error=unauthorized .*",
        intake[1],
    )
