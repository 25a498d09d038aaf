r"""The web server's access log: one line per request, written off the request path.

``keyledger serve`` wraps the app in ``AccessLogged`` (plain log format; with
JSON logs keyledger's request log replaces the access log). Each line holds the
time, the worker's pid, the client (the peer address, as the server saw it),
the request id as the client sent it (``-`` when none), the request line
without its query string, the status and the duration::

    [2026-12-01 00:42:44,622] pid=<8070> 127.0.0.1 rid=- "GET /v1/auth/check HTTP/1.1" 200 0.07ms

Every value a client chooses is made safe to write: anything shaped like a
keyledger key is redacted (``_`` also spelled ``%5F``, as a path encoded twice
shows it; and any run of 40 letters and digits, a secret however mangled), control characters, ``"`` and ``\`` are escaped as ``\xNN`` (the
server hands over the path decoded: a ``%0A`` must not forge a line, a ``%22``
must not close the quoted request early), and the path is cut to ``MAX_PATH``
characters, so that a line always fits in one atomic write. The request id is
the one the response carries (the client's when it is a sane token of at most
64 characters, else a new one), never the raw header.

Why not the server's own access log (Granian's, through ``logging``): measured on
the 2-core machine, forward authentication used about 50 us more CPU per
request with it (the ``logging`` machinery, a lock held across a write and a
flush for every line) and answered 11,700 req/s against 15,800 without it. Here
a line is formatted with no lock and queued (``deque.append`` is atomic); one
thread per process writes what is queued every ``FLUSH_SECONDS``, in writes of
at most ``PIPE_BUF`` bytes cut at line ends, so that lines of several processes
sharing one pipe (``keyledger run``, a process manager) never interleave
mid-line. As with nginx's ``access_log ... buffer= flush=``: a line is written at
most ``FLUSH_SECONDS`` after its request; what is queued is written when the
process ends normally (the server's graceful stop included), and a process
killed outright (SIGKILL) loses at most that interval of lines.
"""

from __future__ import annotations

import collections
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import IO, Any

from keyledger import process
from keyledger.exiting import at_exit
from keyledger.observability.logs import MAX_METHOD, MAX_PATH, redact_keys
from keyledger.web.auth import REQUEST_ID

FLUSH_SECONDS = 0.1
#: Lines that may wait for a stream that takes nothing (about 15 MB of memory).
MAX_PENDING = 100_000
#: Writes up to this size are atomic on a pipe (POSIX PIPE_BUF, 4096 on Linux).
PIPE_BUF = 4096

#: Written as ``\xNN``: control characters (C0, DEL, C1: a decoded ``%0A`` in a path must
#: not start a forged line of its own), and ``"`` and ``\`` (a decoded ``%22`` must not
#: end the quoted request early and fake the fields after it).
ESCAPED = [*range(0x20), *range(0x7F, 0xA0), ord('"'), ord("\\")]
ESCAPE = {c: f"\\x{c:02x}" for c in ESCAPED}
NEEDS_ESCAPE = re.compile(r'[\x00-\x1f\x7f-\x9f"\\]')


def clean(value: str, limit: int | None = None) -> str:
    """A value for the access line: keys redacted, unsafe characters escaped, and at most
    ``limit`` characters kept."""
    value = redact_keys(value)
    if NEEDS_ESCAPE.search(value):
        value = value.translate(ESCAPE)
    if limit is not None and len(value) > limit:
        value = value[:limit] + "..."
    return value


class LineWriter:
    """Queues whole lines and writes them from one background thread per process."""

    def __init__(self, stream: IO[str] | None = None, interval: float = FLUSH_SECONDS):
        self.stream = stream
        self.interval = interval
        self._pending: collections.deque[str] = collections.deque()
        self._write_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._writer_pid: int | None = None
        #: Lines not queued because ``MAX_PENDING`` were waiting.
        self.dropped = 0

    def write(self, line: str) -> None:
        """Queue one line (ending in a newline); never blocks on the stream. While the
        stream takes nothing (a full pipe) at most ``MAX_PENDING`` lines wait; the rest
        are counted, and the count is written when the stream takes lines again."""
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self._pending.append(line)
        if self._writer_pid != process.pid():
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._writer_pid == process.pid():
                return
            self._writer_pid = process.pid()
            threading.Thread(target=self._write_forever, name="access-log", daemon=True).start()
            at_exit(self.flush)  # a forked Granian worker's too (keyledger.exiting)

    def _write_forever(self) -> None:
        pid, pause = process.pid(), threading.Event()
        while self._writer_pid == pid:
            pause.wait(self.interval)
            self.flush()

    def flush(self) -> None:
        """Write every queued line now, in writes of at most ``PIPE_BUF`` bytes."""
        with self._write_lock:
            dropped, self.dropped = self.dropped, 0
            if dropped:
                self._pending.append(f"access log: {dropped} lines dropped (output blocked)\n")
            chunk: list[str] = []
            size = 0
            while self._pending:
                line = self._pending.popleft()
                length = len(line.encode("utf-8", "replace"))
                if length > PIPE_BUF:  # never expected (values are cut): still one write
                    line = line.encode("utf-8", "replace")[: PIPE_BUF - 4].decode("utf-8", "ignore")
                    line, length = line + "...\n", len(line.encode()) + 4
                if chunk and size + length > PIPE_BUF:
                    self._emit("".join(chunk))
                    chunk, size = [], 0
                chunk.append(line)
                size += length
            if chunk:
                self._emit("".join(chunk))

    def _emit(self, text: str) -> None:
        stream = self.stream or sys.stdout
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: as logging does, go on
            pass


class Clock:
    """The line's time, ``2026-12-01 00:42:44,622`` (local time, as ``logging`` writes it);
    the part up to the second is formatted once per second."""

    def __init__(self) -> None:
        self._cached = (-1, "")  # one tuple: threads read a second and its text together

    def __call__(self, now: float) -> str:
        second = int(now)
        cached_second, prefix = self._cached
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._cached = (second, prefix)
        return f"{prefix},{int((now - second) * 1000):03d}"


def response_id(headers: list[tuple[str, str]]) -> str:
    """The response's X-Request-Id, or ``-`` (only names of its length are lowered)."""
    for name, value in headers:
        if len(name) == 12 and (name == "X-Request-Id" or name.lower() == "x-request-id"):
            return value
    return "-"


class AccessLogged:
    """WSGI middleware writing one access line per request (see the module's text)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], writer: LineWriter | None = None):
        self.app = app
        self.writer = writer or LineWriter()
        self.clock = Clock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.perf_counter()
        # Read before the app runs: a proxy fix inside may rewrite the client's address.
        request = (
            environ.get("REMOTE_ADDR") or "-",
            environ.get("REQUEST_METHOD", ""),
            environ.get("PATH_INFO", ""),
            environ.get("SERVER_PROTOCOL", ""),
        )
        answered: list[tuple[str, list[tuple[str, str]]]] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answered.append((status, headers))
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, start)
        except BaseException:
            self.writer.write(self.line(request, "500", "-", started))
            raise
        if answered:
            status, headers = answered[-1]
            rid = response_id(headers)
            self.writer.write(self.line(request, status[:3], rid, started))
        else:
            self.writer.write(self.line(request, "-", "-", started))
        return body

    def line(
        self, request: tuple[str, str, str, str], status: str, rid: str, started: float
    ) -> str:
        addr, method, path, protocol = request
        rid = rid if REQUEST_ID.fullmatch(rid) else "-"
        told = (
            f"{clean(addr, 64)} rid={rid} "
            f'"{clean(method, MAX_METHOD)} {clean(path, MAX_PATH)} {clean(protocol, 16)}"'
        )
        ms = (time.perf_counter() - started) * 1000
        return f"[{self.clock(time.time())}] pid=<{process.pid()}> {told} {status} {ms:.2f}ms\n"
