"""Real Redis topologies on loopback for the deployment tests: a cluster and a Sentinel group."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from service.redis_server import RedisServer, find_redis_server, free_port
from tests.waiting import block_until


class _Topology:
    """Servers started together; a failed start stops whatever did start."""

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class Cluster(_Topology):
    """Three masters, no replicas, every slot assigned."""

    def __init__(self, base: Path, size: int = 3) -> None:
        # Each node's bus port is chosen too: the default (port + 10000) overflows for high ports.
        self.bus_ports = [free_port() for _ in range(size)]
        self.nodes = [
            RedisServer(base / f"node{n}", durable=False, extra=("--cluster-enabled", "yes",
                        "--cluster-port", str(self.bus_ports[n]),
                        "--cluster-config-file", str(base / f"node{n}" / "nodes.conf")))
            for n in range(size)
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        per_node = 16384 // len(self.nodes)
        for i, node in enumerate(self.nodes):
            last = 16383 if i == len(self.nodes) - 1 else (i + 1) * per_node - 1
            with redis.Redis(port=node.port) as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per_node, last)
        with redis.Redis(port=self.nodes[0].port) as first:
            for node, bus_port in zip(self.nodes[1:], self.bus_ports[1:], strict=True):
                first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus_port)

        def healthy() -> bool:
            with redis.Redis(port=self.nodes[0].port) as client:
                info = client.execute_command("CLUSTER", "INFO").decode()
            return "cluster_state:ok" in info and f"cluster_known_nodes:{len(self.nodes)}" in info

        block_until(healthy, "the cluster to form", timeout_s=20)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelGroup(_Topology):
    """A master, replicas and sentinels watching it under the name ``payq``."""

    master_name = "payq"

    def __init__(self, base: Path, replicas: int = 2, sentinels: int = 3) -> None:
        self.base = base
        self.servers = [RedisServer(base / "master", durable=True)]
        for n in range(replicas):
            self.servers.append(
                RedisServer(base / f"replica{n}", durable=True, extra=("--replicaof", "127.0.0.1", "0"))
            )
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.master_name}"

    def _start(self) -> None:
        master = self.servers[0]
        for server in self.servers[1:]:
            server.extra = ("--replicaof", "127.0.0.1", str(master.port))
        for server in self.servers:
            server.start()
        for port in self.sentinel_ports:
            folder = self.base / f"sentinel{port}"
            folder.mkdir(parents=True, exist_ok=True)
            conf = folder / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {master.port} 2\n"
                f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                f"sentinel failover-timeout {self.master_name} 5000\n"
                f"sentinel parallel-syncs {self.master_name} 1\n"
            )
            with (folder / "sentinel.log").open("ab") as log:
                self.sentinels.append(
                    subprocess.Popen([find_redis_server(), str(conf), "--sentinel"], stdout=log, stderr=log)
                )

        def sentinels_see_replicas() -> bool:
            for port in self.sentinel_ports:
                try:
                    with redis.Redis(port=port) as client:
                        replicas = client.execute_command("SENTINEL", "REPLICAS", self.master_name)
                        others = client.execute_command("SENTINEL", "SENTINELS", self.master_name)
                except redis.RedisError:
                    return False
                if len(replicas) < len(self.servers) - 1 or len(others) < len(self.sentinel_ports) - 1:
                    return False
            return True

        block_until(sentinels_see_replicas, "the sentinels to find the replicas and each other")

    def master_port(self) -> int:
        with redis.Redis(port=self.sentinel_ports[0]) as client:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        return int(port)

    def kill(self, port: int) -> bool:
        """Kill the server on ``port``; False when it was not running. Tests name the port: asking the
        sentinels for the master again while they fail over could name the new one."""
        for server in self.servers:
            if server.port == port and server.process is not None and server.process.poll() is None:
                server.process.kill()
                server.process.wait()
                return True
        return False

    def stop(self) -> None:
        for process in self.sentinels:
            process.terminate()
        for process in self.sentinels:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for server in self.servers:
            server.stop()
