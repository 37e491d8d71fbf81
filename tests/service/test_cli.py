"""The ``payq`` command as a user runs it: enqueue, start-up errors, and ``payq dev``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from service.redis_server import RedisServer, free_port
from tests.waiting import block_until
from tests.workers.sample_jobs import DONE, STARTED
from workers.codec import encode_job

REPO = Path(__file__).resolve().parents[2]


def payq_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYQ_")}
    env.update(settings)
    return env


def run_payq(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )


def test_enqueue_writes_node_resque_bytes(redis_url: str, sync_redis: redis.Redis) -> None:
    result = run_payq(
        "enqueue",
        "bitcoin:incoming",
        "log",
        '[ {"memo": "café/₿", "n": 1.0}, [], -7 ]',
        env=payq_env(PAYQ_REDIS_URL=redis_url),
    )

    expected = '{"class":"log","queue":"bitcoin:incoming","args":[{"memo":"café/₿","n":1},[],-7]}'
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected + "\n"
    assert sync_redis.lrange("resque:queue:bitcoin:incoming", 0, -1) == [expected.encode()]
    assert sync_redis.smembers("resque:queues") == {b"bitcoin:incoming"}


def test_enqueue_uses_namespace_and_empty_args_by_default(redis_url: str, sync_redis: redis.Redis) -> None:
    result = run_payq("enqueue", "q", "ping", env=payq_env(PAYQ_REDIS_URL=redis_url, PAYQ_NAMESPACE="shop"))

    assert result.returncode == 0, result.stderr
    assert sync_redis.lrange("shop:queue:q", 0, -1) == [b'{"class":"ping","queue":"q","args":[]}']


@pytest.mark.parametrize(
    ("args_json", "message"), [("[1,", "ARGS_JSON is not JSON"), ('{"a": 1}', "ARGS_JSON must be")]
)
def test_enqueue_rejects_bad_args_json(redis_url: str, sync_redis: redis.Redis, args_json: str, message: str) -> None:
    result = run_payq("enqueue", "q", "log", args_json, env=payq_env(PAYQ_REDIS_URL=redis_url))

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"payq: {message}")
    assert result.stdout == ""
    assert sync_redis.keys("*") == []


def test_worker_rejects_invalid_setting_in_one_line(redis_url: str) -> None:
    result = run_payq("worker", env=payq_env(PAYQ_REDIS_URL=redis_url, PAYQ_WORKER_TIMEOUT_S="abc"))

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "PAYQ_WORKER_TIMEOUT_S" in line


def test_enqueue_requires_redis_url_in_one_line() -> None:
    result = run_payq("enqueue", "q", "log", "[]", env=payq_env())

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "PAYQ_REDIS_URL" in line


def children_of(pid: int) -> dict[int, str]:
    """Child processes of ``pid`` by pid, with their command names."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            found[int(stat.parent.name)] = name
    return found


@pytest.fixture
def dev_process(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``payq dev`` in its own process group; whatever is left of it is killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (tmp_path / "dev.log").open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "dev", *args],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            else:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_dev_runs_embedded_redis_and_worker_until_ctrl_c(
    dev_process: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    api_port = free_port()
    env = payq_env(PAYQ_JOBS="tests.workers.sample_jobs", SAMPLE_JOBS_REDIS_URL=redis_url)
    proc = dev_process("--data-dir", str(data_dir), "--redis-port", str(redis_port), "--port", str(api_port), env=env)
    log = tmp_path / "dev.log"
    client = redis.Redis(port=redis_port)
    try:
        block_until(lambda: proc.poll() is not None or RedisServer(data_dir, port=redis_port).ping(), "embedded redis")
        assert proc.poll() is None, log.read_text()
        block_until(lambda: client.scard("resque:workers") == 1, f"the worker to register\n{log.read_text()}")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("dir")["dir"] == str(data_dir / "redis")
        [redis_pid] = [pid for pid, name in children_of(proc.pid).items() if name.startswith("redis-server")]

        payment = encode_job("bitcoin:incoming", "log", [{"id": "bitcoin:ab:0", "network": "bitcoin", "amount": "1"}])
        client.sadd("resque:queues", "bitcoin:incoming", "q")
        client.rpush("resque:queue:bitcoin:incoming", payment)
        block_until(lambda: client.get("resque:stat:processed") == b"1", f"the job to be performed\n{log.read_text()}")
        assert client.llen("resque:queue:bitcoin:incoming") == 0

        # The API in the same process takes an unsigned payment (development mode) to the worker.
        block_until(lambda: _answers(f"http://127.0.0.1:{api_port}/healthz"), f"the API\n{log.read_text()}")
        body = {"txid": "cd" * 32, "output_index": 0, "address": "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"}
        answer = httpx.post(
            f"http://127.0.0.1:{api_port}/payments/bitcoin", json={**body, "amount": "0.5", "confirmations": 1}
        )
        assert answer.status_code == 202 and answer.json()["payments"][0]["status"] == "enqueued", answer.text
        block_until(lambda: client.get("resque:stat:processed") == b"2", f"the payment job\n{log.read_text()}")
        client.rpush("resque:queue:q", encode_job("q", "slow", ["busy-at-ctrl-c"]))
        block_until(lambda: client.lrange(STARTED, 0, -1) == [b"busy-at-ctrl-c"], "the slow job to start")
    finally:
        client.close()

    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: signal the whole foreground group
    assert proc.wait(20) == 0, log.read_text()

    output = log.read_text()
    assert "payment received id=bitcoin:ab:0" in output
    assert f"payment received id=bitcoin:{'cd' * 32}:0" in output
    assert "payq send" in output  # the ready-to-paste example
    assert "worker stopped" in output
    assert not Path(f"/proc/{redis_pid}").exists()
    assert not RedisServer(data_dir, port=redis_port).ping()
    assert list((data_dir / "redis").glob("appendonly*"))

    # The append-only file kept everything: the job busy at Ctrl-C finished and the worker left cleanly.
    replay = RedisServer(data_dir / "redis", port=free_port(), durable=True)
    replay.start()
    try:
        with redis.Redis(port=replay.port) as again:
            assert again.lrange(DONE, 0, -1) == [b"busy-at-ctrl-c"], output
            assert again.get("resque:stat:processed") == b"3", output
            assert again.smembers("resque:workers") == set(), output
            assert again.keys("resque:worker:*") == [], output
    finally:
        replay.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_dev_without_redis_server_names_how_to_install_it(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()

    result = run_payq("dev", "--data-dir", str(tmp_path / "data"), env=payq_env(PATH=str(empty_bin)))

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "redis-server" in line and "apt-get install redis-server" in line
