"""The yardstick of ``make bench``: a bare WSGI app that answers a small JSON body.

Served by gunicorn with sync workers (2 processes, a new connection per request),
it measures what the machine gives a Python web server at that moment, so that
keyledger's figures are read as ratios to it rather than as absolute numbers
from a shared machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b'{"hello":"world"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return [BODY]
