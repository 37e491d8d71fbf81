"""/healthz answers while the process lives; /readyz only while Redis answers."""

from __future__ import annotations

from pathlib import Path

import httpx

from service.app import create_app
from service.redis_server import RedisServer
from service.settings import Settings
from workers.connection import Store


def client_for(store: Store) -> httpx.AsyncClient:
    app = create_app(Settings(redis_url="redis://unused"), store)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://payq")


async def test_answer_healthz_and_readyz_with_redis_up(store: Store) -> None:
    async with client_for(store) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "redis": "up"})


async def test_answer_readyz_503_once_redis_stops(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, durable=False)
    server.start()
    store = Store.from_url(server.url)
    try:
        async with client_for(store) as client:
            before = await client.get("/readyz")
            server.stop()
            after = await client.get("/readyz")
            health = await client.get("/healthz")
    finally:
        server.stop()
        await store.close()
    assert before.status_code == 200
    assert (after.status_code, after.json()) == (503, {"status": "unavailable", "redis": "down"})
    assert health.status_code == 200


def test_document_health_routes_without_security() -> None:
    app = create_app(Settings(redis_url="redis://unused", admin_token="secret"))
    spec = app.openapi()
    for path in ("/healthz", "/readyz", "/metrics"):
        for operation in spec["paths"][path].values():
            assert "security" not in operation
    assert spec["paths"]["/queues"]["get"]["security"] == [{"HTTPBearer": []}]
