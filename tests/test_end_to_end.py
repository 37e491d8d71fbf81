"""End to end: `payq send` → the API over HTTP → Redis → a payq worker performs `log` with the payment."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from pathlib import Path

import httpx
import orjson
import pytest
import redis
import uvicorn

from service.app import create_app
from service.redis_server import free_port
from service.settings import Settings
from tests.service.intake_client import SECRET
from tests.waiting import wait_until
from workers.connection import Store
from workers.jobs import load_registry
from workers.runtime import Worker, WorkerOptions

ROOT = Path(__file__).resolve().parents[1]


async def payq_send(url: str, redis_url: str, *args: str) -> tuple[int, bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PAYQ_")}
    environment.update({"PAYQ_WEBHOOK_SECRETS": SECRET, "PAYQ_REDIS_URL": redis_url})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "send", *args, "--url", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment, cwd=ROOT,
    )  # fmt: skip
    out, _err = await process.communicate()
    return int(process.returncode or 0), out


async def test_payq_send_reaches_log_job_through_api_and_redis(
    redis_url: str, store: Store, sync_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = Settings(redis_url=redis_url, webhook_secrets=SECRET)  # type: ignore[arg-type]
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    options = WorkerOptions(queues=("bitcoin:incoming",), poll_interval_s=0.2)
    worker = Worker(store, load_registry(), options)
    working = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: server.started)
        status, out = await payq_send(f"http://127.0.0.1:{port}", redis_url, "bitcoin", "--amount", "0.0042")
        answer = orjson.loads(out)
        [outcome] = answer["payments"]
        line = (
            f"payment received id={outcome['id']} network=bitcoin amount=0.00420000 currency=BTC "
            f"address=bc1qnn4m5gjyww2hvyc6trdnhawkcd798zwsp8qrmd confirmations=1 request_id={answer['request_id']}"
        )
        await wait_until(lambda: line in [r.getMessage() for r in caplog.records])
    finally:
        worker.stop()
        await working
        server.should_exit = True
        await serving

    assert status == 0
    assert outcome["status"] == "enqueued" and answer["delivery"] == "new"
    assert sync_redis.llen("resque:queue:bitcoin:incoming") == 0
    assert sync_redis.get("resque:stat:processed") == b"1"
    [accepted] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("webhook accepted")]
    assert re.match(
        rf"webhook accepted request_id={answer['request_id']} network=bitcoin status=202 client=127\.0\.0\.1:\d+ "
        r"ms=\d+\.\d auth=signature webhook_id=msg_",
        accepted,
    )
    assert accepted.endswith(f"enqueued=1 duplicate=0 pending=0 rejected=0 ignored=0 enqueued_ids={outcome['id']}")


async def test_payq_api_serves_payq_send_and_keeps_the_token_out_of_its_log(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PAYQ_")}
    environment.update({"PAYQ_REDIS_URL": redis_url, "PAYQ_WEBHOOK_TOKENS": "tok-e2e-5b7d1c"})
    log = (tmp_path / "api.log").open("wb")
    api = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "api", "--port", str(port), "--workers", "2",
        stdout=log, stderr=log, env=environment, cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until(lambda: "Application startup complete" in (tmp_path / "api.log").read_text())
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service.cli", "send", "dogecoin", "--url", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment, cwd=ROOT,
        )  # fmt: skip
        out, err = await process.communicate()
        # Webhook deliveries log their own line; other requests keep uvicorn's access line, redacted too.
        async with httpx.AsyncClient(base_url=url) as client:
            health = await client.get("/healthz", params={"token": "tok-e2e-5b7d1c"})
    finally:
        api.terminate()
        await api.wait()
        log.close()

    assert process.returncode == 0, err
    [outcome] = orjson.loads(out)["payments"]
    assert outcome["status"] == "enqueued" and outcome["confirmations"] == 6
    assert sync_redis.llen("resque:queue:dogecoin:incoming") == 1
    api_log = (tmp_path / "api.log").read_text()
    text = api_log + err.decode()
    # uvicorn ends each process by raising SIGTERM again: its last lines must be out by then.
    assert text.count("Finished server process") == 2, text
    assert health.status_code == 200
    assert '"GET /healthz?token=<redacted> HTTP/1.1" 200' in text
    assert "webhook accepted" in api_log and '"POST /payments/dogecoin' not in api_log
    assert "tok-e2e-5b7d1c" not in text
