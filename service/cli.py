"""The ``payq`` command: ``dev``, ``api``, ``worker``, ``enqueue`` and friends."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import orjson
from pydantic import ValidationError

from service.settings import Settings, SettingsError, describe_error
from workers.connection import Store
from workers.runtime import WorkerOptions

logger = logging.getLogger("payq")

Command = Callable[[argparse.Namespace, Settings], int]


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
        force=True,
    )


def run_async(main: Awaitable[int]) -> int:
    """Run ``main`` on uvloop where it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type]


def install_stop_handlers(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)


# worker ------------------------------------------------------------------------------------------


def worker_options(settings: Settings, queues: str = "*", concurrency: int = 1) -> WorkerOptions:
    return WorkerOptions(
        queues=tuple(q.strip() for q in queues.split(",") if q.strip()) or ("*",),
        concurrency=concurrency,
        poll_interval_s=settings.poll_interval_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        worker_timeout_s=settings.worker_timeout_s,
        shutdown_grace_s=settings.shutdown_grace_s,
    )


async def serve_worker(store: Store, settings: Settings, options: WorkerOptions) -> None:
    from workers.jobs import load_registry
    from workers.runtime import Worker

    worker = Worker(store, load_registry(settings.jobs), options)
    install_stop_handlers(worker.stop)
    await worker.run()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.require_redis_url()
    options = worker_options(settings, args.queues, args.concurrency)

    async def main() -> int:
        store = Store.from_url(url, settings.namespace)
        try:
            await serve_worker(store, settings, options)
        finally:
            await store.close()
        return 0

    return run_async(main())


# enqueue -----------------------------------------------------------------------------------------


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    from workers.queues import enqueue

    try:
        job_args = orjson.loads(args.args_json)
    except orjson.JSONDecodeError as exc:
        raise SettingsError(f"ARGS_JSON is not JSON: {exc}") from exc
    if not isinstance(job_args, list):
        raise SettingsError("ARGS_JSON must be a JSON array, e.g. '[1, \"two\"]'")
    url = settings.require_redis_url()

    async def main() -> int:
        store = Store.from_url(url, settings.namespace)
        try:
            raw = await enqueue(store, args.queue, args.job_class, job_args)
        finally:
            await store.close()
        print(raw.decode())
        return 0

    return run_async(main())


# dev ---------------------------------------------------------------------------------------------


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
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
    from workers.jobs import load_registry
    from workers.runtime import Worker

    store = Store.from_url(settings.require_redis_url(), settings.namespace)
    worker = Worker(store, load_registry(settings.jobs), worker_options(settings))
    stops: list[Callable[[], None]] = [worker.stop]

    def stop_all() -> None:
        for stop in stops:
            stop()

    install_stop_handlers(stop_all)
    print(f"payq dev is running: redis {settings.redis_url}; press Ctrl-C to stop", file=sys.stderr)
    try:
        await worker.run()
    finally:
        await store.close()
    return 0


# parser ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="payq", description=__doc__)
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="overrides PAYQ_LOG_LEVEL")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="embedded Redis, the API and a worker on every queue, in one process")
    dev.add_argument("--data-dir", default=".payq", help="where the embedded Redis keeps its data")
    dev.add_argument("--redis-port", type=int, default=None, help="embedded Redis port (default: a free one)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(handler=cmd_dev)

    worker = sub.add_parser("worker", help="perform Resque jobs")
    worker.add_argument("--queues", default="*", help="comma-separated queues in priority order, or * (default)")
    worker.add_argument("--concurrency", type=int, default=1, help="jobs performed at once (default 1)")
    worker.set_defaults(handler=cmd_worker)

    enqueue = sub.add_parser("enqueue", help="enqueue any Resque job")
    enqueue.add_argument("queue")
    enqueue.add_argument("job_class", metavar="CLASS")
    enqueue.add_argument("args_json", metavar="ARGS_JSON", nargs="?", default="[]", help="a JSON array (default [])")
    enqueue.set_defaults(handler=cmd_enqueue)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except (ValidationError, ValueError) as exc:
        configure_logging("error")
        print(f"payq: {describe_error(exc)}", file=sys.stderr)
        return 2
    configure_logging(args.log_level or settings.log_level)
    if getattr(args, "concurrency", 1) < 1:
        print("payq: --concurrency must be at least 1", file=sys.stderr)
        return 2
    handler: Command = args.handler
    try:
        return handler(args, settings)
    except SettingsError as exc:
        print(f"payq: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from service.redis_server import RedisServerError
        from workers.errors import ResqueError

        if isinstance(exc, RedisServerError | ResqueError):
            print(f"payq: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
