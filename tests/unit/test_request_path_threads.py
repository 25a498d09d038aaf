"""What the request path does without waiting on a lock or a system call that lets the
GIL go (docs/operators.md, "Performance": a convoy of server threads), and that it still
counts and notes everything."""

from __future__ import annotations

import ctypes
import os
import re
import socket
import threading

from prometheus_client import CollectorRegistry

from keyledger import process
from keyledger.adapters import pollnow
from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.lastused import LastUseRecorder
from keyledger.observability.metrics import WebMetrics
from keyledger.web.auth import choose_request_id


def test_the_poller_tells_whether_a_socket_has_something_to_read() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        poller = pollnow.Poller([ours])
        assert not poller.any()
        theirs.sendall(b"x")
        assert poller.any()
        assert pollnow.readable([theirs, ours]) == {1}
        ours.recv(1)
        assert not poller.any()
        theirs.close()
        assert poller.any()  # a hang-up is something to read (reading then says so)


def test_the_poller_keeps_the_gil() -> None:
    """ctypes.PyDLL: the call runs whole under the GIL (unlike select, or ctypes.CDLL)."""
    assert pollnow._POLL is not None
    assert pollnow._POLL._flags_ & ctypes._FUNCFLAG_PYTHONAPI  # the GIL is kept


def test_request_ids_are_32_hex_digits_and_never_repeat() -> None:
    made = {choose_request_id(None) for _ in range(10_000)}
    assert len(made) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in made)


def test_a_forked_process_makes_other_request_ids_and_knows_its_pid() -> None:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        os.write(write, f"{choose_request_id(None)} {process.pid()} {os.getpid()}".encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    rid, seen_pid, real_pid = os.read(read, 200).decode().split()
    os.close(read)
    assert seen_pid == real_pid != str(os.getpid())
    assert process.pid() == os.getpid()
    assert rid not in {choose_request_id(None) for _ in range(1000)}


def metrics() -> WebMetrics:
    return WebMetrics(CollectorRegistry(), flush_every=3600)


def test_counts_made_while_the_lock_is_busy_are_flushed_too() -> None:
    counted = metrics()
    with counted._lock:  # as if another thread (or the flusher) held it
        counted.request("GET", "/v1/", 200, 0.001)
        counted.key_verified(True)
    counted.request("GET", "/v1/", 200, 0.001)
    counted.flush()
    assert counted.requests.labels("GET", "/v1/", "200")._value.get() == 2
    assert counted.verifications.labels("hit")._value.get() == 1


class Scripts:
    """Stands in for the Redis client: records what the last-use script would write."""

    def __init__(self) -> None:
        self.written: list[tuple[str, ...]] = []

    def register_script(self, _source: str) -> object:
        def run(keys: list[str], args: list[str]) -> None:
            self.written.append(tuple(args))

        return run


def test_notes_made_while_the_lock_is_busy_are_written_with_the_next_flush() -> None:
    scripts = Scripts()
    recorder = LastUseRecorder(scripts, Keyspace(), interval=0)  # type: ignore[arg-type]
    with recorder._lock:  # as if another thread (or the flusher) held it
        recorder.note(("00aa000000000000", "00bb000000000000"), "10.0.0.1")
    recorder.note(("00cc000000000000",), "10.0.0.2")
    assert recorder.flush() == 3
    written = [args[i] for args in scripts.written for i in range(0, len(args), 3)]
    assert sorted(written) == ["00aa000000000000", "00bb000000000000", "00cc000000000000"]


def test_threads_never_wait_for_each_other_on_the_metrics() -> None:
    counted = metrics()
    barrier = threading.Barrier(4, timeout=10)

    def count() -> None:
        barrier.wait()
        for _ in range(5_000):
            counted.request("GET", "/v1/", 200, 0.001)

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    counted.flush()
    assert counted.requests.labels("GET", "/v1/", "200")._value.get() == 20_000
