"""The web server of ``keyledger serve`` (the Procfile's ``web``): Granian, WSGI interface.

Chosen by measurement (docs/operators.md, "Performance", ``python -m bench.servers``): on
this 2-core machine the same app answered several times more requests under
Granian (a Rust HTTP server, keep-alive, 2 worker processes) than under
gunicorn's sync workers, and more than under gunicorn's threaded workers.

Each worker process builds its own app (``keyledger:create_app`` as a factory,
called after the worker starts, whether it was forked or spawned), so the
authentication cache's subscription, the Redis connections and the metrics
thread all belong to the process that uses them. Workers that die are started
again, as gunicorn does. On SIGTERM (or SIGINT) the server stops accepting,
lets requests in flight finish, and stops; a worker that has not stopped after
``KILL_AFTER`` seconds is killed.

Logs go to stdout: the server's own lines, and one access line per request
(client, worker pid, request id, request line without the query string,
status, duration), with anything shaped like a keyledger key in the path
replaced. With ``KEYLEDGER_LOG_FORMAT=json`` every line of every process is
JSON, and keyledger's own request log replaces the access log.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from keyledger.observability.logs import KEY_SHAPE, redact_keys

TARGET = "keyledger:create_app"
DEFAULT_WORKERS = 2
#: Python threads per worker that run the app. Redis round trips and argon2 release the
#: GIL, so a few overlap usefully; measured: 1 thread serves a third less, 2 about as much
#: as Granian's default (up to 256 threads per worker, which it warns about).
THREADS = 4
#: Seconds a worker has to finish its requests after SIGTERM (gunicorn's default too).
KILL_AFTER = 30
#: One access line: client, request id (as the client sent it), request, status, duration.
ACCESS_FORMAT = (
    '%(addr)s rid=%(header{x-request-id})s "%(method)s %(path)s %(protocol)s" '
    "%(status)d %(dt_ms).2fms"
)
#: The line around it: time, then the pid of the worker that served the request.
ACCESS_LINE = "[%(asctime)s] pid=<%(process)d> %(message)s"


#: Control characters (C0, DEL, C1) written as ``\xNN``: a decoded ``%0A`` in a path
#: must not start a line of its own in the log (a forged log line).
ESCAPE_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}


def clean(value: str) -> str:
    """An access line's value with keys redacted and control characters escaped."""
    if "kl" in value and KEY_SHAPE.search(value):
        value = redact_keys(value)
    return value.translate(ESCAPE_CONTROLS)


class RedactKeys(logging.Filter):
    """Makes an access line's values safe to write: anything shaped like a keyledger key is
    redacted (in the path, and in the request id, which the client chooses), and control
    characters are escaped (the server hands over the path decoded)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict):
            cleaned = {
                name: clean(value)
                for name, value in args.items()
                if isinstance(value, str) and clean(value) != value
            }
            if cleaned:
                record.args = {**args, **cleaned}
        return True


def log_config(log_format: str) -> dict[str, Any]:
    """Granian's logging configuration (``logging.config.dictConfig``), in every process."""
    if log_format == "json":
        plain = access = {"()": "keyledger.observability.logs.JsonFormatter"}
    else:
        plain = {
            "()": "logging.Formatter",
            "fmt": "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
        }
        access = {"()": "logging.Formatter", "fmt": ACCESS_LINE}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "keyledger.serving.RedactKeys"}},
        "formatters": {"generic": plain, "access": access},
        "handlers": {
            "console": {
                "formatter": "generic",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
            },
            "access": {
                "formatter": "access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "filters": ["redact"],
            },
        },
        "loggers": {
            "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def workers_from(environ: dict[str, str]) -> int:
    raw = environ.get("WEB_CONCURRENCY", "") or str(DEFAULT_WORKERS)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"WEB_CONCURRENCY={raw!r} is not a number of processes (1 or more)")
    return int(raw)


def server(environ: dict[str, str] | None = None, log_format: str = "plain") -> Any:
    """The configured Granian server for HOST, PORT and WEB_CONCURRENCY (not yet serving)."""
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    environ = dict(os.environ if environ is None else environ)
    port = environ.get("PORT", "") or "8080"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"PORT={port!r} is not a port number")
    host = environ.get("HOST", "") or "127.0.0.1"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # "[::]", as gunicorn took it: Granian wants the bare address
    return Server(
        TARGET,
        address=host,
        port=int(port),
        interface=Interfaces.WSGI,
        websockets=False,
        factory=True,
        workers=workers_from(environ),
        blocking_threads=THREADS,
        log_level=LogLevels.info,
        log_dictconfig=log_config(log_format),
        log_access=log_format != "json",
        log_access_format=ACCESS_FORMAT,
        respawn_failed_workers=True,
        workers_kill_timeout=KILL_AFTER,
    )
