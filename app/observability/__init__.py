"""Observability: Prometheus metrics, readiness, structured logs, in one place.

The components report what they do to an ``Observer`` (``observer.py``: a
do-nothing base, so nothing here is on their import path but that class); the
entry points install the real thing:

- the web factory: ``web.install`` wraps the WSGI app (request metrics, the
  request log, ``/metrics`` and ``/readyz``) and hands a ``WebObserver`` to the
  gate, the key hasher and the event store;
- ``keyledger projector`` and ``keyledger worker``: ``logs.configure`` and, on
  their own port, ``exposition.serve`` with their scrape-time collectors.

``prometheus_client`` is imported only by the modules that need it, and only
when an entry point installs them: in multiprocess mode it must find
``PROMETHEUS_MULTIPROC_DIR`` in the environment when it is first imported.
"""

from __future__ import annotations

import os


def count_alone() -> None:
    """For the projector and the worker, before ``prometheus_client`` is first imported:
    this process counts on its own, even when the environment names the web workers'
    multiprocess directory (``keyledger run`` exports it to every process)."""
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    os.environ.pop("prometheus_multiproc_dir", None)
