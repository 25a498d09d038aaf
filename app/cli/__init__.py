"""The ``keyledger`` command line.

Every command reads ``REDIS_URL`` (or the embedded Redis of ``make run``) and,
with ``--json``, prints exactly one JSON object on stdout. Each module adds its
commands to ``main``:

- ``operator``: accounts, the API switch, account keys, secret keys
- ``processes``: the projector and ``run`` (every Procfile process)
- ``audit``: hash-chain verification of the log
- ``replay``: event replay and state at a point in time
- ``tail``: the live audit feed (``events tail``)
- ``projections``: rebuilds through the worker queue
- ``status``: health of the log, the projections and the Redis settings
- ``lifecycle``: stale keys and the scheduler of expiry sweeps
- ``dev``: ``dev seed``, a realistic history at scale for benchmarks
"""

from __future__ import annotations

from keyledger.cli import (
    audit,
    dev,
    lifecycle,
    operator,
    processes,
    projections,
    replay,
    status,
    tail,
)
from keyledger.cli.common import main

__all__ = [
    "audit",
    "dev",
    "lifecycle",
    "main",
    "operator",
    "processes",
    "projections",
    "replay",
    "status",
    "tail",
]
