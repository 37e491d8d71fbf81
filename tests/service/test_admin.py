"""The admin API against a real Redis holding entries written by payq, node-resque and Ruby Resque."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest
import redis

from service.app import create_app
from service.redis_server import free_port
from service.settings import Settings
from workers.connection import Store
from workers.failures import failure_entry
from workers.queues import enqueue

TOKEN = "admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

RUBY_JOB = b'{"class":"Archive","args":[7,"x"]}'
NODE_JOB = b'{"class":"add","queue":"math","args":[1,2]}'
NODE_FAILURE = (
    b'{"worker":"vm:10945","queue":"math","payload":{"class":"add","queue":"math","args":[1,2]},'
    b'"exception":"TypeError","error":"kaboom","backtrace":["    at fn (file:1:2)"],'
    b'"failed_at":"Thu Dec 03 2026 15:40:42 GMT+0000 (Coordinated Universal Time)"}'
)
RUBY_FAILURE = (
    b'{"failed_at":"2026/12/03 15:40:42 UTC","payload":{"class":"Archive","args":[7,"x"]},'
    b'"exception":"RuntimeError","error":"disk full","backtrace":["archive.rb:3:in `perform\'"],'
    b'"worker":"box:77:low","queue":"low"}'
)

ROUTES = [
    ("GET", "/queues"),
    ("GET", "/queues/math/jobs"),
    ("DELETE", "/queues/math/jobs?class=add"),
    ("DELETE", "/queues/math"),
    ("GET", "/workers"),
    ("GET", "/failed"),
    ("POST", "/failed/0/retry?digest=abc"),
    ("DELETE", "/failed/0?digest=abc"),
    ("POST", "/failed/retry-all"),
    ("DELETE", "/failed"),
    ("GET", "/delayed"),
    ("GET", "/stats"),
]


def make_client(store: Store, admin_token: str | None = TOKEN) -> httpx.AsyncClient:
    settings = Settings(redis_url="redis://unused", admin_token=admin_token)
    app = create_app(settings, store)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://payq")


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(store) as client:
        client.headers.update(AUTH)
        yield client


# auth --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_reject_admin_route_without_or_with_wrong_token(
    store: Store, sync_redis: redis.Redis, method: str, path: str
) -> None:
    sync_redis.rpush("resque:failed", NODE_FAILURE)
    sync_redis.sadd("resque:queues", "math")
    sync_redis.rpush("resque:queue:math", NODE_JOB)
    async with make_client(store) as client:
        missing = await client.request(method, path)
        wrong = await client.request(method, path, headers={"Authorization": "Bearer not-the-token"})
        basic = await client.request(method, path, headers={"Authorization": f"Basic {TOKEN}"})
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert sync_redis.llen("resque:failed") == 1
    assert sync_redis.llen("resque:queue:math") == 1


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_refuse_admin_route_when_no_token_configured(store: Store, method: str, path: str) -> None:
    async with make_client(store, admin_token=None) as client:
        response = await client.request(method, path, headers={"Authorization": "Bearer "})
    assert response.status_code == 503
    assert "PAYQ_ADMIN_TOKEN" in response.json()["detail"]


async def test_answer_admin_route_503_when_redis_is_down() -> None:
    store = Store.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        async with make_client(store) as client:
            response = await client.get("/queues", headers=AUTH)
    finally:
        await store.close()
    assert response.status_code == 503
    assert response.json() == {"detail": "Redis is unavailable"}


# queues ------------------------------------------------------------------------------------------


async def test_list_queues_with_lengths_from_every_client(
    client: httpx.AsyncClient, store: Store, sync_redis: redis.Redis
) -> None:
    await enqueue(store, "bitcoin:incoming", "log", [{"id": "bitcoin:t:0"}])
    sync_redis.sadd("resque:queues", "low", "math")
    sync_redis.rpush("resque:queue:low", RUBY_JOB, RUBY_JOB)
    sync_redis.rpush("resque:queue:math", NODE_JOB)
    response = await client.get("/queues")
    assert response.status_code == 200
    assert response.json() == {
        "queues": [
            {"name": "bitcoin:incoming", "length": 1},
            {"name": "low", "length": 2},
            {"name": "math", "length": 1},
        ]
    }


async def test_page_queue_jobs_bounded(client: httpx.AsyncClient, store: Store, sync_redis: redis.Redis) -> None:
    for n in range(5):
        await enqueue(store, "math", "add", [n, n])
    sync_redis.rpush("resque:queue:math", RUBY_JOB, b"not json")
    response = await client.get("/queues/math/jobs", params={"offset": 4, "limit": 2})
    assert response.status_code == 200
    page = response.json()
    assert (page["total"], page["offset"], page["limit"]) == (7, 4, 2)
    assert page["jobs"] == [
        {"class": "add", "args": [4, 4], "queue": "math", "raw": None},
        {"class": "Archive", "args": [7, "x"], "queue": None, "raw": None},
    ]
    tail = (await client.get("/queues/math/jobs", params={"offset": 6})).json()
    assert tail["jobs"] == [{"class": None, "args": None, "queue": None, "raw": "not json"}]


@pytest.mark.parametrize("params", [{"limit": 501}, {"limit": 0}, {"offset": -1}, {"limit": "many"}])
async def test_reject_queue_page_out_of_bounds(
    client: httpx.AsyncClient, store: Store, params: dict[str, object]
) -> None:
    await enqueue(store, "math", "add", [1, 2])
    response = await client.get("/queues/math/jobs", params=params)
    assert response.status_code == 422


async def test_answer_404_for_unknown_queue(client: httpx.AsyncClient) -> None:
    for method, path in [("GET", "/queues/nope/jobs"), ("DELETE", "/queues/nope"), ("DELETE", "/queues/nope/jobs")]:
        response = await client.request(method, path, params={"class": "x"} if path.endswith("jobs") else None)
        assert response.status_code == 404, (method, path)


async def test_delete_queue_jobs_by_class_and_args(
    client: httpx.AsyncClient, store: Store, sync_redis: redis.Redis
) -> None:
    await enqueue(store, "math", "add", [1, 2])
    await enqueue(store, "math", "add", [3, 4])
    await enqueue(store, "math", "sub", [1, 2])
    sync_redis.rpush("resque:queue:math", b'{"class":"add","args":[3,4]}')

    response = await client.delete("/queues/math/jobs", params={"class": "add", "args": "[3,4]"})
    assert response.status_code == 200
    assert response.json() == {"count": 2}
    assert sync_redis.lrange("resque:queue:math", 0, -1) == [
        b'{"class":"add","queue":"math","args":[1,2]}',
        b'{"class":"sub","queue":"math","args":[1,2]}',
    ]
    response = await client.delete("/queues/math/jobs", params={"class": "add"})
    assert response.json() == {"count": 1}
    assert sync_redis.lrange("resque:queue:math", 0, -1) == [b'{"class":"sub","queue":"math","args":[1,2]}']


@pytest.mark.parametrize("args", ["[1,", '{"a":1}', "3"])
async def test_reject_delete_jobs_with_bad_args(
    client: httpx.AsyncClient, store: Store, sync_redis: redis.Redis, args: str
) -> None:
    await enqueue(store, "math", "add", [1, 2])
    response = await client.delete("/queues/math/jobs", params={"class": "add", "args": args})
    assert response.status_code == 422
    assert sync_redis.llen("resque:queue:math") == 1


async def test_delete_queue_removes_jobs_and_registration(
    client: httpx.AsyncClient, store: Store, sync_redis: redis.Redis
) -> None:
    await enqueue(store, "math", "add", [1, 2])
    await enqueue(store, "other", "add", [1, 2])
    response = await client.delete("/queues/math")
    assert response.json() == {"count": 1}
    assert not sync_redis.exists("resque:queue:math")
    assert sync_redis.smembers("resque:queues") == {b"other"}


# workers and stats -------------------------------------------------------------------------------


async def test_list_workers_of_ruby_and_node_resque(client: httpx.AsyncClient, sync_redis: redis.Redis) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    ruby_id, node_id = "box:77:low,math", "vm:10945:math"
    sync_redis.sadd("resque:workers", ruby_id, node_id)
    sync_redis.set(f"resque:worker:{ruby_id}:started", "2026-12-03 15:40:37 +0000")
    sync_redis.hset("resque:workers:heartbeat", ruby_id, now.strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    sync_redis.set(
        f"resque:worker:{ruby_id}", b'{"queue":"low","run_at":"2026-12-03T15:41:00Z","payload":' + RUBY_JOB + b"}"
    )
    sync_redis.set(f"resque:worker:{node_id}:started", "1796312438")
    sync_redis.set("resque:worker:ping:vm:10945", orjson.dumps({"time": int(now.timestamp()) - 20, "name": "vm:10945"}))

    response = await client.get("/workers")
    assert response.status_code == 200
    ruby, node = response.json()["workers"]
    assert (ruby["id"], ruby["host"], ruby["pid"], ruby["queues"]) == (ruby_id, "box", "77", ["low", "math"])
    assert ruby["started"] == "2026-12-03T15:40:37Z"
    assert ruby["working_on"] == {"class": "Archive", "args": [7, "x"], "queue": None, "raw": None}
    assert ruby["working_since"] == "2026-12-03T15:41:00Z"
    assert 0 <= ruby["heartbeat_age_s"] < 60
    assert (node["id"], node["queues"], node["working_on"]) == (node_id, ["math"], None)
    assert node["started"] == datetime.fromtimestamp(1796312438, UTC).isoformat().replace("+00:00", "Z")
    assert 19 <= node["heartbeat_age_s"] < 80


async def test_read_stats_counts(client: httpx.AsyncClient, store: Store, sync_redis: redis.Redis) -> None:
    await enqueue(store, "math", "add", [1, 2])
    await enqueue(store, "low", "x", [])
    await enqueue(store, "low", "x", [])
    sync_redis.set("resque:stat:processed", 12)
    sync_redis.set("resque:stat:failed", 3)
    sync_redis.rpush("resque:failed", NODE_FAILURE)
    sync_redis.sadd("resque:workers", "box:77:low")
    response = await client.get("/stats")
    assert response.json() == {
        "processed": 12,
        "failed": 3,
        "pending": 3,
        "queues": 2,
        "workers": 1,
        "working": 0,
        "failed_list": 1,
    }


# failed jobs -------------------------------------------------------------------------------------


async def test_list_failed_entries_of_every_client(client: httpx.AsyncClient, sync_redis: redis.Redis) -> None:
    payq_entry = failure_entry(NODE_JOB, "math", "h:1:math", "ValueError", "bad input", ["job.py:3:in `add'"])
    sync_redis.rpush("resque:failed", NODE_FAILURE, RUBY_FAILURE, payq_entry)
    response = await client.get("/failed", params={"offset": 0, "limit": 10})
    assert response.status_code == 200
    page = response.json()
    assert page["total"] == 3
    node, ruby, payq = page["failures"]
    assert (node["index"], node["class"], node["args"], node["exception"], node["error"]) == (
        0,
        "add",
        [1, 2],
        "TypeError",
        "kaboom",
    )
    assert node["backtrace"] == ["    at fn (file:1:2)"]
    assert node["failed_at"] == "2026-12-03T15:40:42Z"
    assert (ruby["class"], ruby["queue"], ruby["worker"], ruby["failed_at"]) == (
        "Archive",
        "low",
        "box:77:low",
        "2026-12-03T15:40:42Z",
    )
    assert ruby["backtrace"] == ["archive.rb:3:in `perform'"]
    assert (payq["exception"], payq["error"], payq["index"]) == ("ValueError", "bad input", 2)
    assert len({node["digest"], ruby["digest"], payq["digest"]}) == 3
    second = (await client.get("/failed", params={"offset": 1, "limit": 1})).json()
    assert [f["class"] for f in second["failures"]] == ["Archive"]


async def test_retry_failed_moves_node_resque_job_back(client: httpx.AsyncClient, sync_redis: redis.Redis) -> None:
    sync_redis.rpush("resque:failed", RUBY_FAILURE, NODE_FAILURE)
    digest = (await client.get("/failed")).json()["failures"][1]["digest"]
    response = await client.post("/failed/1/retry", params={"digest": digest})
    assert response.status_code == 200
    assert response.json()["class"] == "add"
    assert sync_redis.lrange("resque:queue:math", 0, -1) == [NODE_JOB]
    assert sync_redis.lrange("resque:failed", 0, -1) == [RUBY_FAILURE]
    assert sync_redis.sismember("resque:queues", "math")


async def test_refuse_stale_index_with_409(client: httpx.AsyncClient, sync_redis: redis.Redis) -> None:
    sync_redis.rpush("resque:failed", RUBY_FAILURE, NODE_FAILURE)
    first = (await client.get("/failed")).json()["failures"][0]
    sync_redis.lpop("resque:failed")  # someone else removed entry 0: index 0 is now the node-resque entry
    retry = await client.post("/failed/0/retry", params={"digest": first["digest"]})
    remove = await client.delete("/failed/0", params={"digest": first["digest"]})
    assert retry.status_code == remove.status_code == 409
    assert sync_redis.lrange("resque:failed", 0, -1) == [NODE_FAILURE]
    assert not sync_redis.exists("resque:queue:math")


async def test_answer_404_for_missing_failed_index(client: httpx.AsyncClient, sync_redis: redis.Redis) -> None:
    sync_redis.rpush("resque:failed", NODE_FAILURE)
    assert (await client.post("/failed/5/retry", params={"digest": "abc"})).status_code == 404
    assert (await client.delete("/failed/5", params={"digest": "abc"})).status_code == 404
    assert (await client.delete("/failed/0")).status_code == 422  # the digest is required
    assert sync_redis.llen("resque:failed") == 1


async def test_remove_failed_entry(client: httpx.AsyncClient, sync_redis: redis.Redis) -> None:
    sync_redis.rpush("resque:failed", RUBY_FAILURE, NODE_FAILURE)
    digest = (await client.get("/failed")).json()["failures"][0]["digest"]
    response = await client.delete("/failed/0", params={"digest": digest})
    assert response.status_code == 200
    assert response.json()["exception"] == "RuntimeError"
    assert sync_redis.lrange("resque:failed", 0, -1) == [NODE_FAILURE]


async def test_retry_all_and_clear_failed(client: httpx.AsyncClient, sync_redis: redis.Redis) -> None:
    sync_redis.rpush("resque:failed", RUBY_FAILURE, NODE_FAILURE, b"garbage")
    response = await client.post("/failed/retry-all")
    assert response.json() == {"count": 2}
    assert sync_redis.lrange("resque:queue:low", 0, -1) == [RUBY_JOB]
    assert sync_redis.lrange("resque:queue:math", 0, -1) == [NODE_JOB]
    assert sync_redis.lrange("resque:failed", 0, -1) == [b"garbage"]
    response = await client.delete("/failed")
    assert response.json() == {"count": 1}
    assert not sync_redis.exists("resque:failed")


# delayed jobs ------------------------------------------------------------------------------------


async def test_list_delayed_jobs_in_resque_scheduler_layout(client: httpx.AsyncClient, sync_redis: redis.Redis) -> None:
    early, late = 1796312400, 1796316000
    sync_redis.zadd("resque:delayed_queue_schedule", {str(late): late, str(early): early})
    sync_redis.rpush(f"resque:delayed:{early}", b'{"class":"add","queue":"math","args":[1,2]}')
    sync_redis.rpush(f"resque:delayed:{late}", b'{"class":"Archive","args":[7],"queue":"low"}', b'{"class":"B"}')
    response = await client.get("/delayed")
    assert response.status_code == 200
    page = response.json()
    assert page["total"] == 2
    first, second = page["delayed"]
    assert (first["timestamp"], first["at"]) == (early, "2026-12-03T15:40:00Z")
    assert first["jobs"] == [{"class": "add", "args": [1, 2], "queue": "math", "raw": None}]
    assert [j["class"] for j in second["jobs"]] == ["Archive", "B"]
    later = (await client.get("/delayed", params={"offset": 1, "limit": 1})).json()
    assert [s["timestamp"] for s in later["delayed"]] == [late]
