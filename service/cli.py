"""The ``payq`` command: ``dev``, ``api``, ``worker``, ``enqueue`` and friends."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import orjson
from pydantic import ValidationError

from service.logs import configure_logging, uvicorn_log_config
from service.settings import Settings, SettingsError, describe_error
from workers.connection import Store, open_store
from workers.runtime import WorkerOptions

logger = logging.getLogger("payq")

Command = Callable[[argparse.Namespace, Settings], int]


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


def worker_options(
    settings: Settings, queues: str = "*", concurrency: int = 1, *, scheduler: bool = True
) -> WorkerOptions:
    from workers.retry import RetryOverride, RetryPolicy

    return WorkerOptions(
        queues=tuple(q.strip() for q in queues.split(",") if q.strip()) or ("*",),
        concurrency=concurrency,
        poll_interval_s=settings.poll_interval_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        worker_timeout_s=settings.worker_timeout_s,
        shutdown_grace_s=settings.shutdown_grace_s,
        scheduler=scheduler,
        scheduler_interval_s=settings.scheduler_interval_s,
        scheduler_lock_timeout_s=settings.scheduler_lock_timeout_s,
        retry_default=RetryPolicy(
            attempts=settings.retry_attempts,
            backoff_s=settings.retry_backoff_s,
            backoff_cap_s=settings.retry_backoff_cap_s,
        ),
        retry_overrides={name: RetryOverride(**entry.model_dump()) for name, entry in settings.retry_classes.items()},
    )


async def serve_worker(
    store: Store, settings: Settings, options: WorkerOptions, metrics_port: int | None = None
) -> None:
    from service.metrics import MetricsServer, WorkerMetrics, start_worker_metrics_server
    from workers.jobs import load_registry
    from workers.runtime import Worker

    worker_metrics = WorkerMetrics()
    server: MetricsServer | None = None
    if metrics_port is not None:
        server = start_worker_metrics_server(worker_metrics, metrics_port)
    worker = Worker(store, load_registry(settings.jobs), options, on_job=worker_metrics.on_job)
    gc.freeze()  # start-up objects live as long as the process: keep them out of full collections
    install_stop_handlers(worker.stop)
    try:
        await worker.run()
    finally:
        if server is not None:
            server.stop()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.require_redis_url()
    options = worker_options(settings, args.queues, args.concurrency, scheduler=args.scheduler)

    async def main() -> int:
        store = await open_store(url, settings.namespace)
        try:
            await serve_worker(store, settings, options, args.metrics_port)
        finally:
            await store.close()
        return 0

    return run_async(main())


# enqueue -----------------------------------------------------------------------------------------


def parse_when(text: str) -> float:
    """``--at``: unix seconds, or an ISO 8601 time (UTC unless it names an offset)."""
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(f"--at {text!r} is neither unix seconds nor an ISO 8601 time") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    from workers.codec import encode_job
    from workers.delayed import enqueue_at
    from workers.queues import enqueue

    when = parse_when(args.at) if args.at is not None else None
    if args.delay_s is not None:
        when = time.time() + args.delay_s
    try:
        job_args = orjson.loads(args.args_json)
    except orjson.JSONDecodeError as exc:
        raise SettingsError(f"ARGS_JSON is not JSON: {exc}") from exc
    if not isinstance(job_args, list):
        raise SettingsError("ARGS_JSON must be a JSON array, e.g. '[1, \"two\"]'")
    url = settings.require_redis_url()

    async def main() -> int:
        store = await open_store(url, settings.namespace)
        try:
            if when is None:
                print((await enqueue(store, args.queue, args.job_class, job_args)).decode())
            else:
                due_s = await enqueue_at(store, when, args.queue, args.job_class, job_args)
                print(encode_job(args.queue, args.job_class, job_args).decode())
                print(f"delayed until {due_s} (unix seconds)", file=sys.stderr)
        finally:
            await store.close()
        return 0

    return run_async(main())


# api ---------------------------------------------------------------------------------------------

OPENAPI_PATH = Path("openapi/openapi.json")


def warn_unauthenticated(settings: Settings) -> None:
    if settings.dev_mode and not settings.webhook_secrets and not settings.webhook_tokens:
        logger.warning(
            "DEVELOPMENT MODE: POST /payments/<network> accepts unsigned requests; "
            "set PAYQ_WEBHOOK_SECRETS or PAYQ_WEBHOOK_TOKENS before exposing payq"
        )


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.http import HTTP_PROTOCOL

    settings.require_redis_url()
    settings.require_webhook_auth()
    if args.workers < 1:
        raise SettingsError("--workers must be at least 1")
    warn_unauthenticated(settings)
    uvicorn.run(
        "service.app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=uvicorn_log_config(args.log_level or settings.log_level),
        proxy_headers=True,
        http=HTTP_PROTOCOL,
    )
    return 0


# send --------------------------------------------------------------------------------------------


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    import httpx

    from service.networks import Network
    from service.send import PaymentFields, build_payment, encode_body, send_body

    network = Network(args.network)
    if args.body:
        body = sys.stdin.buffer.read() if args.body == "-" else Path(args.body).read_bytes()
    else:
        fields = PaymentFields(
            address=args.address,
            amount=args.amount,
            confirmations=args.confirmations,
            txid=args.txid,
            output_index=args.output_index,
            tx_hash=args.tx_hash,
            destination_tag=args.destination_tag,
        )
        body = encode_body(build_payment(settings, network, fields))
    try:
        response = send_body(settings, network, body, args.url)
    except httpx.HTTPError as exc:
        print(f"payq: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    print(f"HTTP {response.status_code}", file=sys.stderr)
    print(response.text)
    return 0 if response.is_success else 1


# openapi -----------------------------------------------------------------------------------------


def openapi_document() -> bytes:
    """The app's OpenAPI document as committed in openapi/openapi.json (independent of the environment)."""
    from service.app import create_app

    app = create_app(Settings.model_construct())
    return orjson.dumps(app.openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def cmd_openapi(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(openapi_document())
    print(f"wrote {path}", file=sys.stderr)
    return 0


# poll --------------------------------------------------------------------------------------------


def cmd_poll(args: argparse.Namespace, settings: Settings) -> int:
    from pollers.errors import PollerConfigError
    from pollers.runner import PollOptions, poll_network

    if args.interval is not None and args.interval <= 0:
        raise SettingsError("--interval must be more than 0 seconds")
    if args.stream and args.network != "ripple":
        raise SettingsError("--stream is for ripple only")
    url = settings.require_redis_url()
    options = PollOptions(interval_s=args.interval, since=args.since, stream=args.stream)

    async def main() -> int:
        store = await open_store(url, settings.namespace)
        stop = asyncio.Event()
        install_stop_handlers(stop.set)
        try:
            await poll_network(settings, store, args.network, options, stop)
        finally:
            await store.close()
        return 0

    try:
        return run_async(main())
    except PollerConfigError as exc:
        raise SettingsError(str(exc)) from exc


# dev ---------------------------------------------------------------------------------------------


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from service.dev import run_dev

    return run_dev(args, settings)


# check -------------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from service.checks import check_api, check_worker

    if args.what == "api":
        healthy, detail = check_api(args.url)
    else:
        healthy, detail = asyncio.run(check_worker(settings))
    print(detail)
    return 0 if healthy else 1


# parser ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="payq", description="payq turns Bitcoin, Dogecoin and XRP Ledger payments into Resque jobs."
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="overrides PAYQ_LOG_LEVEL")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="embedded Redis, the API and a worker on every queue, in one process")
    dev.add_argument("--data-dir", default=".payq", help="where the embedded Redis keeps its data")
    dev.add_argument("--redis-port", type=int, default=None, help="embedded Redis port (default: a free one)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(handler=cmd_dev)

    api = sub.add_parser("api", help="serve the HTTP API (webhook intake, admin API, dashboard, metrics)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    api.set_defaults(handler=cmd_api)

    send = sub.add_parser("send", help="post a signed sample (or the given) payment to a running payq")
    send.add_argument("network", choices=["bitcoin", "dogecoin", "ripple"])
    send.add_argument("--url", default="http://127.0.0.1:8000", help="where payq listens")
    send.add_argument("--body", help="send this file's bytes as the body (- for stdin) instead of a payment")
    send.add_argument("--address", help="default: the first watched address, else a sample one")
    send.add_argument("--amount", help="decimal string in whole units, e.g. 0.0015")
    send.add_argument("--confirmations", type=int, help="bitcoin/dogecoin; default: the required number")
    send.add_argument("--txid", help="bitcoin/dogecoin; default: random")
    send.add_argument("--output-index", type=int, default=0, help="bitcoin/dogecoin (default 0)")
    send.add_argument("--tx-hash", help="ripple; default: random")
    send.add_argument("--destination-tag", type=int, help="ripple")
    send.set_defaults(handler=cmd_send)

    openapi = sub.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("--output", default=str(OPENAPI_PATH), help=f"default {OPENAPI_PATH}")
    openapi.set_defaults(handler=cmd_openapi)

    worker = sub.add_parser("worker", help="perform Resque jobs")
    worker.add_argument("--queues", default="*", help="comma-separated queues in priority order, or * (default)")
    worker.add_argument("--concurrency", type=int, default=1, help="jobs performed at once (default 1)")
    worker.add_argument(
        "--no-scheduler", dest="scheduler", action="store_false", help="do not move delayed jobs in this process"
    )
    worker.add_argument("--metrics-port", type=int, default=None, help="serve this worker's Prometheus metrics here")
    worker.set_defaults(handler=cmd_worker)

    poll = sub.add_parser("poll", help="find payments to the watched addresses by polling a node or server")
    poll.add_argument("network", choices=["bitcoin", "dogecoin", "ripple"])
    poll.add_argument("--interval", type=float, default=None, help="seconds between polls (PAYQ_POLLER_INTERVAL_S)")
    poll.add_argument("--since", default=None, help="first start only: a block hash or height, or a ledger index")
    poll.add_argument("--stream", action="store_true", help="ripple: subscribe over WebSocket, backfill on connect")
    poll.set_defaults(handler=cmd_poll)

    enqueue = sub.add_parser("enqueue", help="enqueue any Resque job")
    enqueue.add_argument("queue")
    enqueue.add_argument("job_class", metavar="CLASS")
    enqueue.add_argument("args_json", metavar="ARGS_JSON", nargs="?", default="[]", help="a JSON array (default [])")
    later = enqueue.add_mutually_exclusive_group()
    later.add_argument("--at", metavar="TIME", help="delay the job until TIME (unix seconds or ISO 8601)")
    later.add_argument("--in", dest="delay_s", metavar="SECONDS", type=float, help="delay the job by SECONDS")
    enqueue.set_defaults(handler=cmd_enqueue)
    check = sub.add_parser("check", help="exit 0 when the API or this host's worker is healthy")
    check.add_argument("what", choices=["api", "worker"])
    check.add_argument("--url", default="http://127.0.0.1:8000/healthz", help="for api: the URL to probe")
    check.set_defaults(handler=cmd_check)

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
