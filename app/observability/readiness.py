"""Readiness (``GET /readyz``): may a load balancer send this web process requests?

Four checks, each named in the answer:

- ``redis``: Redis answers (on connections of their own with a short timeout, so
  a stalled Redis makes the probe fail rather than hang): a PING, or on a
  cluster, the node serving each partition;
- ``invalidations``: this process's invalidation subscription is confirmed and
  was heard from within the last 1.5 s (waiting up to half a second for the
  answer to a PING when it has been quiet), so its cache can be trusted;
- ``projector``: the oldest log entry the projections have not applied is
  younger than ``KEYLEDGER_READY_MAX_LAG_MS`` (by the Redis clock; 0 when caught
  up): changes take effect promptly;
- ``partitions``: no partition is halted on an entry it cannot apply.

The projector part costs two round trips and is kept for one second, so a
load balancer may probe every second from several places. ``/healthz`` stays
liveness only: the process runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from keyledger.adapters import health
from keyledger.adapters.authcache import AuthCache
from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.redis_client import REDIS_ERRORS
from keyledger.adapters.topology import Topology

log = logging.getLogger("keyledger.readiness")

LAG_CACHE_SECONDS = 1.0
SUBSCRIPTION_WAIT = 0.5


class Readiness:
    def __init__(
        self,
        topology: Topology,
        keyspace: Keyspace,
        cache: AuthCache,
        max_lag_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.topology = topology
        self.keys = keyspace
        self.cache = cache
        self.max_lag_ms = max_lag_ms
        self.clock = clock
        self._lags: list[health.PartitionLag] | None = None
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def check(self) -> tuple[bool, bytes]:
        """Whether this process is ready, and the JSON body naming every check."""
        checks: dict[str, dict[str, Any]] = {}
        lags = self._projection_lags(checks)
        live = self.cache.live(SUBSCRIPTION_WAIT)
        checks["invalidations"] = {"ok": live}
        if not live:
            checks["invalidations"]["error"] = "invalidation subscription not live"
        if lags is None:
            unknown = "cannot be checked while Redis does not answer"
            checks["projector"] = {"ok": False, "error": unknown}
            checks["partitions"] = {"ok": False, "error": unknown}
        else:
            lag_ms = max((lag.age_ms for lag in lags), default=0)
            checks["projector"] = {
                "ok": lag_ms <= self.max_lag_ms,
                "lagMs": lag_ms,
                "maxLagMs": self.max_lag_ms,
            }
            if lag_ms > self.max_lag_ms:
                behind = [lag.partition for lag in lags if lag.age_ms > self.max_lag_ms]
                checks["projector"]["error"] = (
                    f"projector lag {lag_ms} ms over {self.max_lag_ms} ms "
                    f"(partitions {', '.join(map(str, behind))})"
                )
            halted = [lag.partition for lag in lags if lag.halted]
            checks["partitions"] = {"ok": not halted, "halted": halted}
            if halted:
                checks["partitions"]["error"] = (
                    f"partitions halted: {', '.join(map(str, halted))} "
                    "(see 'keyledger deadletter list')"
                )
        failing = sorted(name for name, result in checks.items() if not result["ok"])
        body = {
            "status": "unavailable" if failing else "ready",
            "failing": failing,
            "checks": checks,
        }
        return not failing, json.dumps(body, sort_keys=True).encode()

    def _projection_lags(
        self, checks: dict[str, dict[str, Any]]
    ) -> list[health.PartitionLag] | None:
        """The partitions' lag (kept for a second); PING only while it is fresh."""
        try:
            with self._lock:
                if self.clock() - self._read_at >= LAG_CACHE_SECONDS or self._lags is None:
                    self._lags = health.log_lag(self.topology, self.keys)
                    self._read_at = self.clock()
                else:
                    self._ping()
                lags = self._lags
        except (*REDIS_ERRORS, OSError) as exc:
            checks["redis"] = {
                "ok": False,
                "error": f"Redis does not answer ({type(exc).__name__})",
            }
            return None
        checks["redis"] = {"ok": True}
        return lags

    def _ping(self) -> None:
        """Every node serving a partition answers (the one Redis, or those primaries)."""
        partitions = {p: self.keys.log(p) for p in range(self.keys.partitions)}
        for node, _ in self.topology.by_primary(partitions):
            node.client.ping()
