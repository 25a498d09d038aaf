"""Log output: plain text (the default) or one JSON object per line.

``KEYLEDGER_LOG_FORMAT=json`` makes every record of the process one line of
JSON: ``time`` (UTC, ISO-8601 with milliseconds), ``level``, ``logger``,
``message``, ``pid``, then any fields the record carries (the request log adds
``request_id``, ``method``, ``path``, ``status``, ``duration_ms`` and, when
known, ``account_id``, ``key_name``, ``policy`` and ``reason``). The web
server's own loggers in the process (gunicorn's, Granian's) get the same
format, so a log shipper reads one format.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
from typing import Any

from keyledger.domain.tokens import (
    KEY_SHAPE,
    LONGEST_READ,
    REDACTED,
    key_shape_spans,
    redact,
)

#: Attributes every LogRecord has; anything else on a record is a field of the line.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Loggers of web servers that run keyledger in their workers.
SERVER_LOGGERS = ("gunicorn.error", "gunicorn.access", "_granian", "granian.access")
#: Anything shaped like a keyledger key is replaced in logged text (a client may misplace
#: one): ``tokens.KEY_SHAPE``, the prefix in any case with ``_``, ``-`` or an encoded ``_``,
#: or a run of more than ``tokens.LONGEST_ID`` letters and digits, however a client mangled
#: a key. A long name or hex digest in a path is redacted too: the log loses a name rather
#: than keep a secret. A secret its holder cuts into short pieces on purpose is theirs to
#: leak; no filter can stop that.
#: The shortest text ``KEY_SHAPE`` can match (shorter text skips the search).
SHORTEST_KEY_SHAPE = 24
#: Characters of a path kept in a line; the rest is cut, marked "...".
MAX_PATH = 1024
#: Characters of a method kept (a client may send any token).
MAX_METHOD = 16


#: Characters outside JSON's required escapes that some line readers take as line ends
#: (or that a terminal acts on): DEL, the C1 controls, U+2028 and U+2029.
LINE_BREAKERS = re.compile("[\x7f-\x9f\u2028\u2029]")
ESCAPE_LINE_BREAKERS = {c: f"\\u{c:04x}" for c in [*range(0x7F, 0xA0), 0x2028, 0x2029]}


def redact_keys(text: str) -> str:
    """``text`` with anything shaped like a key replaced. Text with non-ASCII characters,
    ``%``, ``&`` or ``\\`` is also read decoded (``tokens.readings``: a fullwidth key, one a WSGI
    server handed over as Latin-1, percent-encoded or written with character references
    reads back as the key); when any reading shows one, the most decoded reading is what
    is kept, redacted (``tokens.redact``). Only the first ``tokens.LONGEST_READ``
    characters are read, and kept."""
    if len(text) < SHORTEST_KEY_SHAPE:
        return text
    if len(text) > LONGEST_READ:
        text = text[:LONGEST_READ] + "..."
    if text.isascii() and "%" not in text and "&" not in text and "\\" not in text:
        return KEY_SHAPE.sub(REDACTED, text)
    return _redact_decoded(text)


@functools.lru_cache(maxsize=16)
def _redact_decoded(text: str) -> str:
    """``tokens.redact`` with ``KEY_SHAPE``, remembered: one request's lines quote its path
    up to five times (the access line, the JSON request line, the denial line and its
    reason), and a path that must be decoded 32 times costs up to 2.5 ms each. A few
    entries: enough for the requests in flight, and the texts held no longer than that."""
    return redact(text, key_shape_spans)


def loggable(text: str, limit: int) -> str:
    """A value a client chose, for a log line: keys redacted, at most ``limit`` characters
    (cut after redacting, so that a cut never leaves part of a key behind)."""
    text = redact_keys(text)
    return text if len(text) <= limit else text[:limit] + "..."


def utc_time(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        text = json.dumps(line, default=str, ensure_ascii=False)
        # json escapes only what JSON requires (below U+0020); line readers also break at
        # C1 controls (NEL) and U+2028/U+2029 (str.splitlines does): escape those too.
        if LINE_BREAKERS.search(text):
            text = text.translate(ESCAPE_LINE_BREAKERS)
        return text


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(PLAIN_FORMAT)


def configure(level: str, log_format: str) -> None:
    """Send this process's records to stderr in ``log_format`` ("plain" or "json").

    Like ``logging.basicConfig``, plain text leaves a logging set up by someone
    else (a host application, a test runner) alone; JSON adds its handler to it.
    Calling it again changes the format of the handler it added. With JSON, the
    web server's loggers in this process get the same format, and its access log
    is silenced: keyledger's request log (``keyledger.request``) replaces it.
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_keyledger", False)]
    if not ours and (log_format == "json" or not root.handlers):
        added = logging.StreamHandler(sys.stderr)
        added._keyledger = True  # type: ignore[attr-defined]
        root.addHandler(added)
        ours = [added]
    if not ours:
        return
    for handler in ours:
        handler.setFormatter(formatter(log_format))
    root.setLevel(level)
    if log_format == "json":
        for name in SERVER_LOGGERS:
            for server_handler in logging.getLogger(name).handlers:
                server_handler.setFormatter(JsonFormatter())
        for access in ("gunicorn.access", "granian.access"):
            logging.getLogger(access).disabled = True
