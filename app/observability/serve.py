"""The ``/metrics`` port of a process that is not the web server (projector, RQ worker)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.registry import Collector

log = logging.getLogger("keyledger.metrics")


def serve(port: int, collectors: list[Collector], what: str) -> None:
    """Serve ``collectors`` (and the process's CPU and memory) on ``port``, from a thread.

    These are single processes: their metrics are their own, even when the
    environment names the web workers' multiprocess directory (``keyledger run``
    exports it to every process), so nothing here is written there.
    """
    from prometheus_client import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    for collector in collectors:
        registry.register(collector)
    start_http_server(port, registry=registry)
    log.info("%s metrics on port %d (/metrics)", what, port)
