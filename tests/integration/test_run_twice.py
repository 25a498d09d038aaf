"""A second ``make run`` in the same directory stops at once (issue 7, finding 6).

It used to start a second embedded Redis on the same data directory (two
servers, one append-only file), retry binding port 8080, and on exit delete
``var/redis.url`` so that the ``keyledger`` command lost the Redis still running.
These tests run the real ``keyledger run`` (what ``make run`` runs) in a
temporary directory, with a Procfile of one sleeping process, as separate
processes: the second finds the first by the lock on the data directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import redis

from keyledger.adapters.embedded import DataDirInUse, DataDirLock, free_port, port_is_free
from tests.e2e.harness import KEYLEDGER, wait_for

TIMEOUT = 30  # seconds: far more than stopping at once takes


def env(port: int) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "PORT", "HOST"} and not k.startswith("KEYLEDGER_")
    }
    return {**clean, "PORT": str(port), "PYTHONUNBUFFERED": "1"}


#: A Procfile process that, told to stop (Ctrl-C reaches it, and honcho's SIGTERM), asks
#: Redis whether it still answers, as the projector or an RQ worker does while stopping.
PROBER = """
import os, signal, sys, time
import redis
client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2)
def stop(*_):
    time.sleep(0.5)
    try:
        print("at stop, Redis answered:", client.ping(), flush=True)
    except redis.RedisError as exc:
        print("at stop, Redis was gone:", type(exc).__name__, flush=True)
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print("prober ready", flush=True)
time.sleep(600)
"""


def write_procfile(directory: Path) -> None:
    sleeper = f"{sys.executable} -c 'import time; time.sleep(600)'"
    (directory / "prober.py").write_text(PROBER)
    prober = f"{sys.executable} prober.py"
    (directory / "Procfile").write_text(f"sleeper: {sleeper}\nprober: {prober}\n")


@dataclass
class Running:
    """A first ``keyledger run`` serving ``directory``."""

    directory: Path
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address_file(self) -> Path:
        return self.directory / "var" / "redis.url"

    def url(self) -> str:
        return self.address_file.read_text().strip()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def launch(
    directory: Path, port: int, stdout: IO[Any], stderr: IO[Any] | int
) -> subprocess.Popen[bytes]:
    """``keyledger run`` in ``directory`` (the test Procfile), in a session of its own."""
    write_procfile(directory)
    return subprocess.Popen(
        [KEYLEDGER, "run", "--procfile", "Procfile"],
        cwd=directory,
        env=env(port),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def start_run(directory: Path, port: int) -> Running:
    log = directory / "first-run.log"
    with log.open("wb") as out:
        process = launch(directory, port, out, subprocess.STDOUT)
    running = Running(directory, process, port, log)

    def serving() -> bool:
        assert process.poll() is None, f"keyledger run exited:\n{running.log_text()}"
        if not running.address_file.exists() or "sleeper" not in running.log_text():
            return False
        return bool(redis.Redis.from_url(running.url(), socket_timeout=1).ping())

    wait_for(serving, timeout=TIMEOUT, what="the first keyledger run to serve")
    return running


def run_again(directory: Path, port: int) -> subprocess.CompletedProcess[str]:
    """``keyledger run`` in ``directory``, expected to stop by itself at once (if it does not,
    everything it started is stopped and the test fails)."""
    out, err = directory / "second-run.out", directory / "second-run.err"
    # Files, not pipes: the process's own exit is what is waited for (a pipe's end can be
    # held open by a process it started, and then says nothing about its exit).
    with out.open("w") as stdout, err.open("w") as stderr:
        process = launch(directory, port, stdout, stderr)
    try:
        process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        stop_group(process)
        raise AssertionError(
            f"keyledger run did not stop by itself in {TIMEOUT} s; it printed:\n"
            f"{out.read_text(errors='replace')}{err.read_text(errors='replace')}"
        ) from None
    return subprocess.CompletedProcess(
        process.args, process.returncode, out.read_text(), err.read_text()
    )


def redis_servers_on(data_dir: Path) -> list[int]:
    """Pids of the redis-server processes working in this data directory (Redis changes
    into its ``dir``; it rewrites its command line, so that cannot tell)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "redis-server" and Path(
                    os.readlink(entry / "cwd")
                ) == data_dir.resolve():
                    found.append(int(entry.name))
    return found


def stop_group(process: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=TIMEOUT)


def processes_in(directory: Path) -> list[int]:
    """Pids of the processes working in ``directory`` or below: all started by these tests
    (honcho gives each Procfile process its own process group, and a killed
    ``keyledger run`` leaves them behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "cwd")).is_relative_to(directory.resolve()):
                    found.append(int(entry.name))
    return found


@pytest.fixture
def first(tmp_path: Path) -> Iterator[Running]:
    running = start_run(tmp_path, free_port())
    yield running
    stop_group(running.process)
    for pid in processes_in(tmp_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_second_run_in_the_same_directory_stops_at_once_naming_the_first(
    first: Running,
) -> None:
    url = first.url()

    second = run_again(first.directory, first.port)

    assert second.returncode == 1, second.stderr
    message = second.stderr
    assert f"pid {first.process.pid}" in message
    assert url in message
    assert f"kill {first.process.pid}" in message and "Ctrl-C" in message
    assert "not starting a second Redis" in message


def test_the_first_run_keeps_serving_and_keeps_its_address_file(first: Running) -> None:
    url = first.url()
    data_dir = first.directory / "var" / "redis"
    [server] = redis_servers_on(data_dir)

    assert run_again(first.directory, first.port).returncode == 1
    assert run_again(first.directory, free_port()).returncode == 1

    assert first.process.poll() is None
    assert first.url() == url
    assert redis_servers_on(data_dir) == [server]  # never a second server on the data
    assert redis.Redis.from_url(url).ping()


def test_stopping_the_first_run_frees_the_directory_and_removes_its_address_file(
    first: Running,
) -> None:
    stop_group(first.process)

    assert not first.address_file.exists()
    assert redis_servers_on(first.directory / "var" / "redis") == []
    lock = DataDirLock(first.directory / "var" / "redis")
    lock.acquire()  # free again
    lock.release()


def test_a_redis_left_by_a_killed_run_still_guards_its_data(first: Running) -> None:
    data_dir = first.directory / "var" / "redis"
    [server] = redis_servers_on(data_dir)
    # keyledger run and everything it started die at once (say, the OOM killer), but
    # not its Redis, which lives on with the data
    for pid in processes_in(first.directory):
        if pid != server:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    first.process.wait(timeout=TIMEOUT)
    wait_for(
        lambda: processes_in(first.directory) == [server],
        timeout=TIMEOUT,
        what="only the Redis to be left",
    )

    second = run_again(first.directory, free_port())

    assert second.returncode == 1, second.stderr
    assert f"kill {server}" in second.stderr and "left by a keyledger run" in second.stderr
    assert redis_servers_on(data_dir) == [server]
    with pytest.raises(DataDirInUse):
        DataDirLock(data_dir).acquire()


def test_a_port_in_use_stops_the_run_at_once_naming_port_and_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run_again(tmp_path, port)

    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "PORT" in result.stderr
    suggested = int(result.stderr.split("PORT=", 1)[1].split()[0])
    assert suggested != port and port_is_free(suggested)
    assert not (tmp_path / "var" / "redis.url").exists()
    assert redis_servers_on(tmp_path / "var" / "redis") == []


def test_a_run_that_stops_early_leaves_an_address_file_it_did_not_write(tmp_path: Path) -> None:
    """Here the address of a Redis that another tool noted; the run never started one."""
    address_file = tmp_path / "var" / "redis.url"
    address_file.parent.mkdir()
    address_file.write_text("redis://127.0.0.1:6399/0\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()

        assert run_again(tmp_path, taken.getsockname()[1]).returncode == 1

    assert address_file.read_text() == "redis://127.0.0.1:6399/0\n"


def test_ctrl_c_stops_the_procfiles_processes_while_redis_still_answers(
    first: Running,
) -> None:
    """A terminal's Ctrl-C reaches the whole foreground process group at once. The
    embedded Redis used to be in it and stop first, so the projector and the RQ worker
    met a vanished Redis while stopping (warnings, a traceback): Redis stops last now."""
    wait_for(lambda: "prober ready" in first.log_text(), timeout=TIMEOUT, what="the prober")
    os.killpg(first.process.pid, signal.SIGINT)  # as a terminal's Ctrl-C
    first.process.wait(timeout=TIMEOUT)
    log = first.log_text()
    assert "at stop, Redis answered: True" in log, log
    assert redis_servers_on(first.directory / "var" / "redis") == []
    assert not first.address_file.exists()
