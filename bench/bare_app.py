"""The framework's ceiling for the intake benchmark: a FastAPI endpoint that reads the body, parses it
as JSON and answers 202, served by uvicorn exactly as ``payq api`` serves payq (same loop, HTTP
protocol, log configuration and access log)."""

from __future__ import annotations

import sys

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


@app.post("/payments/{network}", status_code=202)
async def receive(network: str, request: Request) -> Response:
    payment = orjson.loads(await request.body())
    return Response(orjson.dumps({"network": network, "received": len(payment)}), 202, media_type="application/json")


if __name__ == "__main__":
    from service.http import GATHERING_PROTOCOL
    from service.logs import configure_logging, uvicorn_log_config

    port, level = int(sys.argv[1]), sys.argv[2]
    configure_logging(level)
    uvicorn.run(
        "bare_app:app",
        host="127.0.0.1",
        port=port,
        workers=1,
        log_config=uvicorn_log_config(level),
        proxy_headers=True,
        http=GATHERING_PROTOCOL,
    )
