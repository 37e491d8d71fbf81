"""The container image, checked without a Docker engine: its install steps run in a fresh virtual
environment, and each command it declares starts and passes its health check."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instruction(name: str) -> list[str]:
    """The exec-form (JSON array) arguments of a Dockerfile instruction."""
    match = re.search(rf"^{name}\s+(?:--\S+\s+)*(?:CMD\s+)?(\[.*\])\s*$", _joined(), re.MULTILINE)
    assert match, f"no exec-form {name} in the Dockerfile"
    value = json.loads(match.group(1))
    assert isinstance(value, list)
    return [str(v) for v in value]


def _joined() -> str:
    return DOCKERFILE.replace("\\\n", " ")


def build_steps() -> list[tuple[str, str]]:
    """The COPY and RUN instructions in order, each RUN split into its shell steps; creating the
    image's system user is left out (it needs root and changes nothing payq runs)."""
    steps: list[tuple[str, str]] = []
    for kind, rest in re.findall(r"^(COPY|RUN)\s+(.*)$", _joined(), re.MULTILINE):
        if kind == "COPY":
            steps.append((kind, rest))
            continue
        steps += [(kind, s.strip()) for s in rest.split("&&") if s.strip() and not s.strip().startswith("useradd")]
    return steps


@pytest.fixture(scope="module")
def image_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A venv built by replaying the Dockerfile's COPY and RUN steps in order."""
    base = tmp_path_factory.mktemp("image")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    app = base / "app"
    app.mkdir()
    for kind, step in build_steps():
        if kind == "COPY":
            *sources, target = step.split()
            for src in sources:
                if (ROOT / src).is_dir():
                    ignore = shutil.ignore_patterns("__pycache__")
                    shutil.copytree(ROOT / src, app / target, dirs_exist_ok=True, ignore=ignore)
                else:
                    assert target.endswith("/"), "files are copied into a folder"
                    shutil.copy(ROOT / src, app / target)
            continue
        subprocess.run(["bash", "-c", step], cwd=app, env=env, check=True, timeout=600)
    return env


def payq(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["payq", *args], env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for_exit_zero(command: list[str], env: dict[str, str], timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        result = subprocess.run(command, env=env, cwd="/", capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            return result.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"{shlex.join(command)} kept failing: {result.stdout}{result.stderr}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> bytes:
    process.terminate()
    try:
        out, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out


@pytest.fixture
def service_env(image_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    redis = RedisServer(tmp_path / "redis", durable=False)
    redis.start()
    yield {**image_env, "PAYQ_REDIS_URL": redis.url, "PAYQ_WEBHOOK_TOKENS": "image-test-token"}
    redis.stop()


@pytest.mark.timeout(600)
def test_image_default_command_serves_api_and_passes_healthcheck(service_env: dict[str, str]) -> None:
    entrypoint, command = instruction("ENTRYPOINT"), instruction("CMD")
    assert entrypoint == ["payq"] and command[0] == "api"
    port = str(free_port())
    args = [port if previous == "--port" else arg for previous, arg in zip(["", *command[:-1]], command, strict=True)]
    api = payq(service_env, *args)
    try:
        health = instruction("HEALTHCHECK")
        assert health[:3] == ["payq", "check", "api"]
        check = [arg.replace(":8000/", f":{port}/") for arg in health]
        assert "answered 200" in wait_for_exit_zero(check, service_env)
    finally:
        stop(api)


@pytest.mark.timeout(600)
def test_image_worker_command_passes_worker_check(service_env: dict[str, str]) -> None:
    env = {**service_env, "PAYQ_HEARTBEAT_INTERVAL_S": "0.5", "PAYQ_WORKER_TIMEOUT_S": "5"}
    worker = payq(env, "worker", "--queues", "*")
    try:
        assert "worker alive" in wait_for_exit_zero(["payq", "check", "worker"], env)
    finally:
        out = stop(worker)
    assert worker.returncode == 0, out.decode()
    assert b"worker stopped" in out
    result = subprocess.run(["payq", "check", "worker"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "no worker registered" in result.stdout


def test_dockerfile_runs_as_non_root_with_stop_settings() -> None:
    assert re.search(r"^USER\s+payq\s*$", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^STOPSIGNAL\s+SIGTERM\s*$", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^FROM\s+python:3\.1[1-9]-slim", DOCKERFILE, re.MULTILINE)
    compose = (ROOT / "compose.yaml").read_text()
    assert "stop_grace_period: 30s" in compose and "--appendfsync" in compose


@pytest.mark.timeout(600)
def test_image_poll_command_keeps_running_while_node_is_down(service_env: dict[str, str]) -> None:
    closed_port = free_port()
    env = {
        **service_env,
        "PAYQ_BITCOIN_RPC_URL": f"http://user:secret@127.0.0.1:{closed_port}/",
        "PAYQ_BITCOIN_ADDRESSES": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    }
    poller = payq(env, "--log-level", "info", "poll", "bitcoin", "--interval", "0.2")
    assert poller.stdout is not None
    seen: list[bytes] = []
    deadline = time.monotonic() + 60
    while not any(b"poll failed network=bitcoin" in line for line in seen):
        assert poller.poll() is None, b"".join(seen).decode()
        assert time.monotonic() < deadline, "the poller never reported the unreachable node"
        seen.append(poller.stdout.readline())
    out = b"".join(seen) + stop(poller)
    assert poller.returncode == 0, out.decode()
    assert b"poller started network=bitcoin" in out and b"poller stopped network=bitcoin" in out
    assert b"secret" not in out
