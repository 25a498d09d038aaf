"""The web server of ``keyledger serve`` (the Procfile's ``web``): Granian, WSGI interface.

Chosen by measurement (docs/operators.md, "Performance", ``python -m bench.servers``): on
this 2-core machine the same app answered several times more requests under
Granian (a Rust HTTP server, keep-alive, 2 worker processes) than under
gunicorn's sync workers, and more than under gunicorn's threaded workers.

Each worker process builds its own app (``served_app`` as a factory,
called after the worker starts, whether it was forked or spawned), so the
authentication cache's subscription, the Redis connections and the metrics
thread all belong to the process that uses them. Workers that die are started
again, as gunicorn does. On SIGTERM (or SIGINT) the server stops accepting,
lets requests in flight finish, and stops; a worker that has not stopped after
``KILL_AFTER`` seconds is killed.

Logs go to stdout: the server's own lines, and one access line per request
(client, worker pid, request id, request line without the query string,
status, duration), with anything shaped like a keyledger key in the path
replaced; keyledger writes the access lines itself, off the request path
(``observability/access.py`` says why). With ``KEYLEDGER_LOG_FORMAT=json`` every line of every process is
JSON, and keyledger's own request log replaces the access log.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from keyledger.observability.access import AccessLogged

TARGET = "keyledger.serving:served_app"
DEFAULT_WORKERS = 2
#: Python threads per worker that run the app. Redis round trips and argon2 release the
#: GIL, so a few overlap usefully; measured: 1 thread serves a third less, 2 about as much
#: as Granian's default (up to 256 threads per worker, which it warns about).
THREADS = 4
#: Seconds a worker has to finish its requests after SIGTERM (gunicorn's default too).
KILL_AFTER = 30


def served_app() -> Flask | AccessLogged:
    """What each worker serves (Granian calls it as a factory): the app, with the access
    log around it unless the log format is JSON (then keyledger's request log replaces it)."""
    from keyledger import create_app

    app = create_app()
    if app.extensions["keyledger"].settings.log_format == "json":
        return app
    return AccessLogged(app)


def log_config(log_format: str) -> dict[str, Any]:
    """Granian's logging configuration (``logging.config.dictConfig``), in every process."""
    if log_format == "json":
        plain = {"()": "keyledger.observability.logs.JsonFormatter"}
    else:
        plain = {
            "()": "logging.Formatter",
            "fmt": "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"generic": plain},
        "handlers": {
            "console": {
                "formatter": "generic",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
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
        log_access=False,  # keyledger writes its own (served_app, observability/access.py)
        respawn_failed_workers=True,
        workers_kill_timeout=KILL_AFTER,
    )
