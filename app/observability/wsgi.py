"""The outermost keyledger layer of the WSGI app: request metrics, the request log,
and the operational endpoints ``/metrics`` and ``/readyz``.

It wraps everything keyledger serves, the forward-auth fast path included
(which answers before Flask), so every request is counted once, by the route
template Flask matched (``teardown`` below records it) or ``unmatched``. With
the JSON request log on, the deeper layers report through
``observer.CURRENT_REQUEST``: the gate's verdict (who the caller is, or why it
was refused) ends up in the request's log line.

``/metrics`` and ``/readyz`` are answered here, before authentication, like
``/healthz``: they hold no account data and a load balancer or Prometheus has
no keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from keyledger.observability.logs import MAX_PATH, loggable, redact_keys
from keyledger.observability.metrics import UNMATCHED, WebMetrics
from keyledger.observability.observer import CURRENT_REQUEST, RequestRecord
from keyledger.web.auth import choose_request_id
from keyledger.web.forward import CHECK_PATH

if TYPE_CHECKING:
    from keyledger.observability.readiness import Readiness

log = logging.getLogger("keyledger.request")

METRICS_PATH = "/metrics"
#: Where Flask (``web.install``'s teardown) leaves the matched route template.
ROUTE_KEY = "keyledger.route"
READY_PATH = "/readyz"
Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Answer = tuple[str, list[tuple[str, str]], list[bytes]]
Exposition = Callable[[str | None], tuple[bytes, str]]


class ObservedApp:
    def __init__(
        self,
        app: Any,
        metrics: WebMetrics | None,
        exposition: Exposition | None,
        readiness: Readiness,
        log_requests: bool,
    ):
        self.app = app
        self.metrics = metrics
        self.exposition = exposition
        self.readiness = readiness
        self.log_requests = log_requests

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        response: list[Any] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            response.append(status)
            response.append(headers)
            return start_response(status, headers, exc_info)

        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            if path == READY_PATH:
                environ[ROUTE_KEY] = READY_PATH
                return self._served(environ, start_response, self._ready(environ), started)
            if path == METRICS_PATH and self.exposition is not None:
                environ[ROUTE_KEY] = METRICS_PATH
                return self._served(environ, start_response, self._metrics(environ), started)
        body: Iterable[bytes]
        if not self.log_requests:
            body = self.app(environ, start)
            if response:
                self._done(environ, None, response[-2], response[-1], time.perf_counter() - started)
            return body
        record = RequestRecord()
        token = CURRENT_REQUEST.set(record)
        try:
            body = self.app(environ, start)
        finally:
            CURRENT_REQUEST.reset(token)
        if response:
            self._done(environ, record, response[-2], response[-1], time.perf_counter() - started)
        return body

    def _served(
        self, environ: Environ, start_response: StartResponse, answer: Answer, started: float
    ) -> list[bytes]:
        status, headers, body = answer
        start_response(status, headers)
        self._done(environ, None, status, headers, time.perf_counter() - started)
        return body

    def _done(
        self,
        environ: Environ,
        record: RequestRecord | None,
        status_line: str,
        headers: list[tuple[str, str]],
        seconds: float,
    ) -> None:
        route = environ.get(ROUTE_KEY)
        if route is None:
            # Only the fast path answers without Flask, and only at CHECK_PATH.
            route = CHECK_PATH if environ.get("PATH_INFO") == CHECK_PATH else UNMATCHED
        status = int(status_line[:3])
        method = environ.get("REQUEST_METHOD", "")
        if self.metrics is not None:
            self.metrics.request(method, route, status, seconds)
        if self.log_requests:
            self._log(environ, record, route, method, status, headers, seconds)

    @staticmethod
    def _log(
        environ: Environ,
        record: RequestRecord | None,
        route: str,
        method: str,
        status: int,
        headers: list[tuple[str, str]],
        seconds: float,
    ) -> None:
        request_id = next((v for k, v in headers if k.lower() == "x-request-id"), None)
        fields: dict[str, Any] = {
            "request_id": request_id,
            "method": method[:16],
            "path": loggable(environ.get("PATH_INFO", ""), 512),
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        verdict = None if record is None else record.verdict
        if verdict is not None:
            principal = verdict.result.principal
            if principal is not None:
                fields["account_id"] = principal.account_id
                fields["key_name"] = redact_keys(principal.key_name)
            if not verdict.admitted:
                decision = verdict.result.decision
                if decision.allowed:
                    fields["policy"], fields["reason"] = "rate_limit", "rate limit exceeded"
                else:
                    # The reason may quote the client's method and path.
                    fields["policy"] = decision.policy
                    fields["reason"] = loggable(decision.reason, MAX_PATH)
        log.info("%s %s %d", fields["method"], fields["path"], status, extra=fields)

    # -- operational endpoints -----------------------------------------------------------
    @staticmethod
    def _headers(environ: Environ, content_type: str, length: int) -> list[tuple[str, str]]:
        return [
            ("Content-Type", content_type),
            ("Content-Length", str(length)),
            ("Cache-Control", "no-store"),
            ("X-Request-Id", choose_request_id(environ.get("HTTP_X_REQUEST_ID"))),
        ]

    def _ready(self, environ: Environ) -> Answer:
        ready, body = self.readiness.check()
        status = "200 OK" if ready else "503 Service Unavailable"
        headers = self._headers(environ, "application/json", len(body))
        return status, headers, [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]

    def _metrics(self, environ: Environ) -> Answer:
        assert self.exposition is not None
        try:
            body, content_type = self.exposition(environ.get("HTTP_ACCEPT"))
            status = "200 OK"
        except Exception:  # a damaged metrics file must not become a 500
            log.exception("cannot render the metrics")
            body, content_type = b"metrics unavailable\n", "text/plain; charset=utf-8"
            status = "503 Service Unavailable"
        headers = self._headers(environ, content_type, len(body))
        return status, headers, [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]
