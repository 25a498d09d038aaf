"""Installs observability into the web app (called by ``keyledger.web.factory``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flask import Flask, request

from keyledger.adapters.redis_client import connect
from keyledger.adapters.topology import Topology
from keyledger.observability.metrics import UNMATCHED, WebMetrics
from keyledger.observability.observer import CURRENT_REQUEST, Observer
from keyledger.observability.readiness import Readiness
from keyledger.observability.wsgi import ROUTE_KEY, ObservedApp

if TYPE_CHECKING:
    from keyledger.bootstrap import Container
    from keyledger.domain.events import Event
    from keyledger.web.auth import Gate, Verdict

#: The readiness probe's own Redis connection fails faster than a request's.
READY_REDIS_TIMEOUT = 1.0


class WebObserver(Observer):
    """Counts what the components report (when metrics are on) and hands the gate's
    verdict to the request being served (for its log line)."""

    __slots__ = ("logged", "metrics")

    def __init__(self, metrics: WebMetrics | None, logged: bool):
        self.metrics = metrics
        self.logged = logged

    def decided(self, verdict: Verdict) -> None:
        if self.logged:
            record = CURRENT_REQUEST.get()
            if record is not None:
                record.verdict = verdict
        if self.metrics is not None:
            self.metrics.decided(verdict)

    def key_verified(self, cached: bool) -> None:
        if self.metrics is not None:
            self.metrics.key_verified(cached)

    def appended(self, events: Sequence[Event]) -> None:
        if self.metrics is not None:
            self.metrics.events(event.TYPE for event in events)


def install(app: Flask, container: Container, gate: Gate) -> None:
    """Wrap ``app.wsgi_app`` (call it after the fast path, before ProxyFix) and hand the
    observer to the components that report."""
    from keyledger.observability.collectors import LogStateCollector

    settings = container.settings
    metrics: WebMetrics | None = None
    exposition = None
    if settings.metrics:
        from keyledger.observability.metrics import web_metrics

        metrics = web_metrics()
        state = LogStateCollector(container.topology, container.keyspace)
        exposition = _exposition(metrics, state)
    observer = WebObserver(metrics, logged=settings.log_format == "json")
    gate.observer = observer
    container.hasher.observer = observer
    container.store.observer = observer
    probe = connect(
        settings.redis_url,
        timeout=min(settings.redis_timeout, READY_REDIS_TIMEOUT),
        cluster=settings.redis_cluster,
    )
    readiness = Readiness(
        Topology(probe), container.keyspace, container.auth_cache, settings.ready_max_lag_ms
    )

    @app.teardown_request
    def note_route(_error: BaseException | None) -> None:
        rule = request.url_rule
        request.environ[ROUTE_KEY] = rule.rule if rule is not None else UNMATCHED

    app.wsgi_app = ObservedApp(  # type: ignore[method-assign]
        app.wsgi_app, metrics, exposition, readiness, settings.log_format == "json"
    )


def _exposition(metrics: WebMetrics, state: Any) -> Any:
    from prometheus_client.exposition import choose_encoder

    from keyledger.observability.metrics import scrape_registry

    def render(accept: str | None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(sane_accept(accept or ""))
        metrics.flush()  # this process's counts are current; other workers' within 0.5 s
        return encoder(scrape_registry(metrics.registry, state)), content_type

    return render


#: A format version as the exposition formats name them (``1.0.0``).
_VERSION = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){0,2}")


def sane_accept(accept: str) -> str:
    """``Accept`` as ``prometheus_client.choose_encoder`` may read it: each media type with
    only a ``version`` of digits and dots. The library copies the version it is given into
    the answer's ``Content-Type`` (an anonymous client could have it echo anything), and
    one it cannot parse (``version=x``) raised a ``TypeError``: a 503 and a traceback in
    the log for anybody's request."""
    kept = []
    for part in accept.split(",")[:16]:
        media, *params = (token.strip() for token in part.split(";"))
        versions = [
            p for p in params if p.startswith("version=") and _VERSION.fullmatch(p[8:].strip())
        ]
        kept.append(";".join([media[:64], *versions[:1]]))
    return ",".join(kept)
