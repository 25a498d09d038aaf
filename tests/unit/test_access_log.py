"""The access log of ``keyledger serve``: the line, what it keeps out, how it is written."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from keyledger.domain.tokens import KeyKind, generate
from keyledger.observability.access import PIPE_BUF, AccessLogged, LineWriter, clean

LINE = re.compile(
    r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] pid=<\d+> (\S+) rid=(\S+) "
    r'"([^"]*)" (\S+) \d+\.\d\dms\n'
)


def environ(path: str = "/v1/", **extra: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "198.51.100.7",
        **extra,
    }


def answering(status: str, rid: str | None = None) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = [("Content-Length", "0")]
        if rid is not None:
            headers.append(("X-Request-Id", rid))
        start_response(status, headers)
        return [b""]

    return app


def served(env: dict[str, Any], status: str = "200 OK", rid: str | None = None) -> str:
    stream = io.StringIO()
    writer = LineWriter(stream)
    body = AccessLogged(answering(status, rid), writer)(env, lambda *a: None)
    assert list(body) == [b""]
    writer.flush()
    return stream.getvalue()


def test_one_line_per_request_names_client_request_and_status() -> None:
    line = served(environ("/v1/api-keys", HTTP_X_REQUEST_ID="req-1"), "404 NOT FOUND", "req-1")
    match = LINE.fullmatch(line)
    assert match is not None, line
    assert match.groups() == ("198.51.100.7", "req-1", "GET /v1/api-keys HTTP/1.1", "404")


def test_a_response_without_an_id_is_written_with_a_dash() -> None:
    match = LINE.fullmatch(served(environ(HTTP_X_REQUEST_ID="req-2")))
    assert match is not None and match.group(2) == "-"


def test_the_id_written_is_the_responses_never_the_raw_header() -> None:
    """The client's header is only echoed when it is a sane token; anything else (a key,
    a forged line, 300 KB) is replaced in the response, and the line shows that id
    (outside review of the access log, finding 1)."""
    token = generate(KeyKind.ACCOUNT, 3).token
    forged = '- "DELETE /v1/api-keys/victim HTTP/1.1" 204 0.10ms\n' * 3000
    for sent in (token, forged):
        line = served(environ(HTTP_X_REQUEST_ID=sent), rid="0123abcd" * 4)
        match = LINE.fullmatch(line)
        assert match is not None and match.group(2) == "0123abcd" * 4
        assert token not in line and "DELETE" not in line


def test_a_key_in_the_path_is_redacted() -> None:
    token = generate(KeyKind.SECRET, 3).token
    line = served(environ(f"/v1/api-keys/{token}"))
    assert token not in line and '"GET /v1/api-keys/[redacted-key] HTTP/1.1"' in line


def test_a_path_that_only_looks_like_a_key_is_left_alone() -> None:
    assert '"GET /v1/api-keys/klsk-is-a-fine-name HTTP/1.1"' in served(
        environ("/v1/api-keys/klsk-is-a-fine-name")
    )


def test_a_key_encoded_twice_in_the_path_is_redacted() -> None:
    """A client or proxy that percent-encodes twice leaves ``%5F`` for the ``_`` once the
    server decoded the path (outside review of the access log, finding 4)."""
    token = generate(KeyKind.SECRET, 3).token
    for spelled in (token.replace("_", "%5F"), token.replace("_", "%255f")):
        line = served(environ(f"/v1/api-keys/{spelled}"))
        assert spelled[8:] not in line and "/v1/api-keys/[redacted-key] " in line


def test_quotes_in_a_path_cannot_end_the_request_early() -> None:
    """A decoded ``%22`` would close the quoted request and fake the fields after it
    (outside review of the access log, finding 2)."""
    line = served(environ('/k19 HTTP/1.1" 200 0.01ms "GET /x\\'))
    assert line.count('"') == 2
    assert '"GET /k19 HTTP/1.1\\x22 200 0.01ms \\x22GET /x\\x5c HTTP/1.1" 200 ' in line


def test_a_long_path_is_cut_so_that_a_line_is_one_atomic_write() -> None:
    line = served(environ("/v1/" + "\n" * 20_000))
    assert len(line.encode()) <= PIPE_BUF and line.count("\n") == 1
    assert "..." in line and LINE.fullmatch(line) is not None


def test_an_overlong_line_is_still_written_in_one_write_and_ends_the_line() -> None:
    stream = Recording()
    writer = LineWriter(stream, interval=3600)
    writer.write("x" * 10_000 + "\n")
    writer.write("next\n")
    writer.flush()
    assert all(len(w.encode()) <= PIPE_BUF and w.endswith("\n") for w in stream.writes)
    assert stream.getvalue().splitlines()[-1] == "next"


def test_control_characters_cannot_forge_a_line() -> None:
    """The server hands over the path decoded: ``%0A`` would start a forged line."""
    line = served(environ("/v1/x\nFORGED keyledger.auth: granted everything\r\x1b[31m"))
    assert line.count("\n") == 1 and "\r" not in line and "\x1b" not in line
    assert '"GET /v1/x\\x0aFORGED keyledger.auth: granted everything\\x0d\\x1b[31m ' in line


def test_the_address_is_the_one_the_server_saw_before_the_app_rewrote_it() -> None:
    def rewriting(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environ["REMOTE_ADDR"] = "203.0.113.9"  # as a proxy fix inside would
        start_response("200 OK", [])
        return [b""]

    stream = io.StringIO()
    writer = LineWriter(stream)
    AccessLogged(rewriting, writer)(environ(), lambda *a: None)
    writer.flush()
    assert " 198.51.100.7 rid=" in stream.getvalue()


def test_an_app_that_raises_is_written_as_a_500_and_the_error_goes_on() -> None:
    def failing(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        raise RuntimeError("boom")

    stream = io.StringIO()
    writer = LineWriter(stream)
    with pytest.raises(RuntimeError):
        AccessLogged(failing, writer)(environ(), lambda *a: None)
    writer.flush()
    match = LINE.fullmatch(stream.getvalue())
    assert match is not None and match.group(4) == "500"


class Recording(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_lines_are_written_in_whole_lines_of_at_most_pipe_buf_bytes() -> None:
    """Lines of several processes share one pipe: each write must be atomic (<= PIPE_BUF)."""
    stream = Recording()
    writer = LineWriter(stream, interval=3600)
    lines = [f"line {n} {'é' * (n % 50)}\n" for n in range(2000)]
    for line in lines:
        writer.write(line)
    writer.flush()
    assert len(stream.writes) > 1
    assert all(len(w.encode()) <= PIPE_BUF and w.endswith("\n") for w in stream.writes)
    assert "".join(stream.writes) == "".join(lines)


def test_the_writer_thread_writes_queued_lines_without_a_flush() -> None:
    stream = Recording()
    writer = LineWriter(stream, interval=0.01)
    writer.write("queued\n")
    done = threading.Event()
    for _ in range(500):
        if stream.getvalue() == "queued\n":
            done.set()
            break
        threading.Event().wait(0.01)
    assert done.is_set()


def test_lines_written_by_many_threads_are_all_written_once() -> None:
    stream = Recording()
    writer = LineWriter(stream, interval=0.001)

    def burst(n: int) -> None:
        for i in range(500):
            writer.write(f"{n}:{i}\n")

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush()
    written = stream.getvalue().splitlines()
    assert sorted(written) == sorted(f"{n}:{i}" for n in range(4) for i in range(500))


def test_a_stream_that_takes_nothing_holds_a_bounded_queue_and_the_loss_is_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full pipe must not grow the queue without bound (review of the access log)."""
    monkeypatch.setattr("keyledger.observability.access.MAX_PENDING", 10)
    stream = Recording()
    writer = LineWriter(stream, interval=3600)
    for n in range(25):
        writer.write(f"line {n}\n")
    assert len(writer._pending) == 10 and writer.dropped == 15
    writer.flush()
    lines = stream.getvalue().splitlines()
    assert lines[:10] == [f"line {n}" for n in range(10)]
    assert lines[10] == "access log: 15 lines dropped (output blocked)"


def test_a_fullwidth_key_in_the_path_is_redacted_as_the_server_hands_it_over() -> None:
    """A WSGI path is the Latin-1 reading of the bytes received: a fullwidth key's UTF-8."""
    key = "klsk_0123456789abcdefABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl012345"
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in key)
    received = f"/v1/api-keys/{fullwidth}".encode().decode("latin-1")
    cleaned = clean(received, 1024)
    assert cleaned == "/v1/api-keys/[redacted-key]"
