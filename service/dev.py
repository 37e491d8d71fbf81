"""``payq dev``: everything on one machine in one process, for development."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from service.cli import install_stop_handlers, run_async, warn_unauthenticated, worker_options
from service.settings import Settings
from workers.connection import open_store

logger = logging.getLogger("payq")


def run_dev(args: argparse.Namespace, settings: Settings) -> int:
    """Embedded Redis (unless PAYQ_REDIS_URL is set), the API, a worker and the configured pollers."""
    from service.redis_server import RedisServer

    server: RedisServer | None = None
    if not settings.redis_url:
        server = RedisServer(Path(args.data_dir) / "redis", port=args.redis_port)
        server.start()
        logger.info("embedded redis started url=%s data_dir=%s appendonly=yes", server.url, server.data_dir)
        settings = settings.model_copy(update={"redis_url": server.url})
    settings = settings.model_copy(update={"dev_mode": True})
    try:
        return run_async(_dev(args, settings))
    finally:
        if server is not None:
            server.stop()
            logger.info("embedded redis stopped")


async def _dev(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from pollers.runner import run_configured_pollers
    from service.app import create_app
    from service.http import HTTP_PROTOCOL
    from workers.jobs import load_registry
    from workers.runtime import Worker

    store = await open_store(settings.require_redis_url(), settings.namespace)
    stop_pollers = asyncio.Event()
    pollers = asyncio.create_task(run_configured_pollers(settings, store, stop_pollers))
    worker = Worker(store, load_registry(settings.jobs), worker_options(settings))
    config = uvicorn.Config(
        create_app(settings, store), host=args.host, port=args.port, log_config=None, http=HTTP_PROTOCOL
    )
    server = uvicorn.Server(config)

    async def serve_api() -> bool:
        try:
            await server.serve()
        except SystemExit:  # uvicorn exits this way when it cannot bind; it has logged why
            return False
        finally:
            worker.stop()
        return True

    # Both run on this event loop; uvicorn catches Ctrl-C while it serves, and the worker stops after it.
    api = asyncio.create_task(serve_api())

    def stop_all() -> None:
        server.should_exit = True
        worker.stop()
        stop_pollers.set()

    install_stop_handlers(stop_all)
    warn_unauthenticated(settings)
    url = f"http://{args.host}:{args.port}"
    print(f"payq dev is running: API {url}, redis {settings.redis_url}; press Ctrl-C to stop", file=sys.stderr)
    print(f"send a test payment:  payq send bitcoin --url {url}", file=sys.stderr)
    try:
        await worker.run()
        server.should_exit = True
        served = await api
    finally:
        stop_pollers.set()
        await pollers
        await store.close()
    return 0 if served else 1
