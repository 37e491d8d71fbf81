"""Schemathesis drives every documented route of a running payq with generated requests: never a 5xx.

The admin routes are called with the admin token so generation reaches past the bearer check, and
Redis is seeded with queues, failed entries, workers and delayed jobs written by other clients.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.settings import Settings
from tests.service.live_server import serve

TOKEN = "schemathesis-token"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def seed(client: redis.Redis) -> None:
    client.sadd("resque:queues", "math", "bitcoin:incoming")
    client.rpush("resque:queue:math", b'{"class":"add","queue":"math","args":[1,2]}', b'{"class":"Archive","args":[7]}')
    client.rpush(
        "resque:failed",
        b'{"worker":"vm:1","queue":"math","payload":{"class":"add","queue":"math","args":[1,2]},'
        b'"exception":"TypeError","error":"kaboom","backtrace":null,"failed_at":1796312438000}',
        b"not json at all",
    )
    client.sadd("resque:workers", "box:77:math")
    client.set("resque:worker:box:77:math", b'{"queue":"math","run_at":"garbage","payload":{"class":"add"}}')
    client.zadd("resque:delayed_queue_schedule", {"1796312400": 1796312400})
    client.rpush("resque:delayed:1796312400", b'{"class":"add","queue":"math","args":[]}')


@pytest.fixture
def api_schema(redis_url: str, sync_redis: redis.Redis) -> Iterator[schemathesis.BaseSchema]:
    seed(sync_redis)
    app = create_app(Settings(redis_url=redis_url, admin_token=TOKEN, webhook_tokens="tok"))  # type: ignore[arg-type]
    with serve(app) as base_url:
        yield schemathesis.openapi.from_url(f"{base_url}/openapi.json")


def test_answer_generated_requests_without_server_error(api_schema: schemathesis.BaseSchema) -> None:
    # Each operation gets its own Hypothesis run (schemathesis's pytest integration does not load
    # under this pytest, so the runs are driven from here).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/queues", "/failed/{index}/retry", "/delayed", "/metrics", "/readyz"}
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        fuzz(operation, statuses.setdefault(f"{operation.method.upper()} {operation.path}", set()))
    assert all(code < 500 for codes in statuses.values() for code in codes), statuses
    # the token got through: the listing routes answered for real, not only with 401
    for route in ("GET /queues", "GET /failed", "GET /workers", "GET /delayed", "GET /stats", "GET /metrics"):
        assert 200 in statuses[route], statuses


def fuzz(operation: schemathesis.APIOperation, seen: set[int]) -> None:
    """Send one operation's generated requests with the admin token, noting the statuses."""

    @given(case=operation.as_strategy())
    @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS, timeout=10)
        seen.add(response.status_code)

    call()
