"""The payq HTTP application: intake, admin API, dashboard, health and metrics."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send

from service import intake
from service.settings import Settings, get_settings
from workers.connection import Store, open_store

VERSION = "0.1.0"


class PayqApp(FastAPI):
    """The FastAPI app, with webhook deliveries answered ahead of its routing (service.intake.serve)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if intake.is_intake_request(scope):
            await intake.serve(self, scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings, store: Store | None = None) -> PayqApp:
    """Build the app for ``settings``; a ``store`` passed in is used as is and not closed."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = store is None
        app.state.store = store or await open_store(settings.require_redis_url(), settings.namespace)
        # Everything built so far (modules, routes, models) lives as long as the process: keep it out of
        # the garbage collector's full passes, which otherwise walk it all and stall requests for
        # milliseconds at a time.
        gc.freeze()
        try:
            yield
        finally:
            if own:
                await app.state.store.close()

    app = PayqApp(title="payq", version=VERSION, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    app.include_router(intake.router)
    _add_operator_routes(app, settings)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Redis answers", responses={503: {"description": "Redis is down"}})
    async def readyz(request: Request) -> JSONResponse:
        try:
            await get_store(request).redis.ping()
        except (RedisError, OSError):
            return JSONResponse({"status": "unavailable", "redis": "down"}, status_code=503)
        return JSONResponse({"status": "ok", "redis": "up"})

    return app


def _add_operator_routes(app: FastAPI, settings: Settings) -> None:
    """The admin API, the dashboard and /metrics (imported here: those modules import this one)."""
    from service import admin, dashboard, metrics

    app.state.metrics = metrics.Metrics(worker_timeout_s=settings.worker_timeout_s)
    app.include_router(admin.router)
    app.include_router(dashboard.router)
    app.include_router(metrics.router)


def get_store(request: Request) -> Store:
    """The app's Redis store, as a FastAPI dependency."""
    store: Store = request.app.state.store
    return store


def get_app_settings(request: Request) -> Settings:
    """The app's settings, as a FastAPI dependency."""
    settings: Settings = request.app.state.settings
    return settings


def app_from_environment() -> PayqApp:
    """The app for the ``PAYQ_*`` environment: the factory ``payq api`` hands to each uvicorn worker."""
    return create_app(get_settings())
