"""Metrics read when Prometheus scrapes: states kept in Redis, and the projector's count.

Each collector asks Redis at scrape time, so every process that exposes one
shows the same current value, and nothing stale survives a process. A scrape
during a Redis outage still answers: ``keyledger_redis_up`` is 0 and the
states read from Redis are left out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import redis
from prometheus_client.core import Metric

from keyledger.adapters import health
from keyledger.adapters.keyspace import PROJECTIONS, Keyspace
from keyledger.adapters.redis_client import REDIS_ERRORS
from keyledger.adapters.topology import Client, Topology
from keyledger.observability.metrics import counter, gauge

log = logging.getLogger("keyledger.metrics")

#: Unapplied entries are counted up to this many per partition and scrape.
LAG_COUNT_CAP = 10_000


class LogStateCollector:
    """Projector lag, halted partitions and dead letters, per partition (from Redis)."""

    def __init__(self, topology: Topology, keyspace: Keyspace):
        self.topology = topology
        self.keys = keyspace

    def collect(self) -> Iterator[Metric]:
        up = gauge("keyledger_redis_up", "1 when this scrape could read the log's state in Redis")
        try:
            lags = health.log_lag(self.topology, self.keys, count_cap=LAG_COUNT_CAP)
        except (*REDIS_ERRORS, OSError) as exc:
            log.warning("metrics: cannot read the log state (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        entries = gauge(
            "keyledger_projector_lag_entries",
            f"Log entries not yet applied by the projections (counted up to {LAG_COUNT_CAP})",
            "partition",
        )
        seconds = gauge(
            "keyledger_projector_lag_seconds",
            "Age of the oldest log entry not yet applied (0 when caught up), Redis clock",
            "partition",
        )
        halted = gauge(
            "keyledger_partition_halted",
            "1 while the projector is halted on an entry it cannot apply",
            "partition",
        )
        dead = gauge(
            "keyledger_dead_letters", "Entries parked in the dead-letter stream", "partition"
        )
        for lag in lags:
            label = [str(lag.partition)]
            entries.add_metric(label, lag.entries or 0)
            seconds.add_metric(label, lag.age_ms / 1000)
            halted.add_metric(label, int(lag.halted))
            dead.add_metric(label, lag.dead_letters)
        yield from (entries, seconds, halted, dead)


class ProjectorCollector:
    """The number of log entries this projector process applied."""

    def __init__(self, applied: Callable[[], int]):
        self.applied = applied

    def collect(self) -> Iterator[Metric]:
        yield counter(
            "keyledger_projector_applied",
            "Log entries this projector process applied to the projections",
            self.applied(),
        )


class RebuildCollector:
    """Progress of projection rebuilds, from the running job's saved progress."""

    def __init__(self, data: Client, queue: redis.Redis, keyspace: Keyspace):
        self.data, self.queue, self.keys = data, queue, keyspace

    def collect(self) -> Iterator[Metric]:
        from rq.exceptions import NoSuchJobError
        from rq.job import Job
        from rq.serializers import JSONSerializer

        ratio = gauge(
            "keyledger_rebuild_progress_ratio",
            "Share of the log the queued or running rebuild has replayed (0 when none runs)",
            "projection",
        )
        running = gauge(
            "keyledger_rebuild_in_progress", "1 while a rebuild is queued or running", "projection"
        )
        try:
            for projection in PROJECTIONS:
                job_id = self.data.get(self.keys.rebuild_lock(projection))
                done = 0.0
                if job_id is not None:
                    try:
                        job = Job.fetch(str(job_id), self.queue, serializer=JSONSerializer)
                        meta = job.get_meta(refresh=False)
                        total = int(meta.get("total") or 0)
                        done = int(meta.get("done") or 0) / total if total else 0.0
                    except NoSuchJobError:
                        pass
                ratio.add_metric([projection], min(done, 1.0))
                running.add_metric([projection], int(job_id is not None))
        except (*REDIS_ERRORS, OSError) as exc:
            log.warning("metrics: cannot read rebuild progress (%s)", type(exc).__name__)
            return
        yield ratio
        yield running
