"""The metrics keyledger exports, and how each process exposes them.

Web processes count with ``prometheus_client``'s multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set (``keyledger run`` sets it): every worker
writes its own per-pid files and any worker's ``/metrics`` sums them all, so it
works however the server starts its workers (fork or spawn) and needs no server
hook. Web processes keep only counters and histograms: the files of a dead
worker still hold counts that happened and must stay (the directory is emptied
when the server starts, as the library requires). Everything that is a state
rather than a count (projector lag, halts, dead letters, rebuild progress) is
read from Redis when scraped, so no gauge of a dead process can linger.

No label carries an account id, key name, user or secret: every label value
comes from a closed set (methods, route templates, policy names, event types,
statuses, partition numbers, projection names).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from keyledger.exiting import at_exit

if TYPE_CHECKING:
    from keyledger.web.auth import Verdict

log = logging.getLogger("keyledger.metrics")

#: Route label of a request that matched no route (never the raw path).
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
RATE_LIMIT = "rate_limit"
#: Seconds between hand-overs of a web process's counts to prometheus_client.
FLUSH_EVERY = 0.5
# What a pending count is for: the metric's attribute on WebMetrics, then its labels.
DECISIONS, REQUESTS, APPENDED = "decisions", "requests", "appended"
RATE_LIMITED, THROTTLED = "rate_limited", "throttled"
BUCKET, SUM = "bucket", "sum"
ALLOWED_DECISION = (DECISIONS, "allowed", "none", "200")
RATE_LIMITED_DECISION = (DECISIONS, "denied", RATE_LIMIT, "429")
HIT, MISS = ("verifications", "hit"), ("verifications", "miss")
THROTTLE = "failure_throttle"
#: Seconds; the warm decision takes tens of microseconds, a cold one tens of ms (argon2).
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Every label name any keyledger metric uses (tests hold the metrics to it).
LABEL_NAMES = frozenset(
    {"result", "policy", "status", "method", "route", "cache", "type", "partition", "projection"}
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class WebMetrics:
    """The counters of a web process. One per process (``web_metrics()``).

    The request path only adds to a dict in memory (under a lock, well under a
    microsecond); a thread of the process hands the sums to ``prometheus_client``
    every ``flush_every`` seconds, and before this process renders ``/metrics``.
    In multiprocess mode each increment of a value is a write to its memory-mapped
    file under the library's lock (about 2 us, a histogram observation about 7 us),
    which a warm decision of about 40 us should not pay five times over. So a
    scrape shows another worker's counts up to ``flush_every`` late, and a worker
    killed outright loses at most its last ``flush_every`` seconds of counts.
    """

    def __init__(self, registry: CollectorRegistry, flush_every: float = FLUSH_EVERY):
        self.registry = registry
        self.flush_every = flush_every
        self.decisions = Counter(
            "keyledger_auth_decisions",
            "Authentication decisions: result allowed|denied, policy the first denying one "
            "(none when allowed), status the HTTP status it maps to",
            ["result", "policy", "status"],
            registry=registry,
        )
        self.requests = Counter(
            "keyledger_http_requests",
            "HTTP requests served, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.durations = Histogram(
            "keyledger_http_request_duration_seconds",
            "Time to answer an HTTP request (until the response is handed to the server)",
            ["route"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.verifications = Counter(
            "keyledger_key_verifications",
            "Presented keys checked: cache hit (remembered in process memory) or miss (argon2)",
            ["cache"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "keyledger_rate_limited",
            "Requests refused by the per-account rate limit (429)",
            registry=registry,
        )
        self.throttled = Counter(
            "keyledger_auth_throttled",
            "Requests refused because their source failed authentication too often (429)",
            registry=registry,
        )
        self.appended = Counter(
            "keyledger_events_appended",
            "Events appended to the log by this service, by event type",
            ["type"],
            registry=registry,
        )
        self._pending: dict[tuple[Any, ...], float] = {}
        #: Counts made while ``_lock`` was held elsewhere (``deque.append`` is atomic).
        self._overflow: deque[tuple[tuple[Any, ...], float]] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forked)

    # -- recording (the request path) ----------------------------------------------------
    def _add(self, key: tuple[Any, ...], amount: float = 1.0) -> None:
        # Never wait for the lock on the request path: with several server threads a
        # waited-for lock queues them behind a thread the GIL switched away from (a
        # convoy, docs/operators.md "Performance"). Busy: the flush adds it later.
        if self._lock.acquire(blocking=False):
            try:
                self._pending[key] = self._pending.get(key, 0.0) + amount
            finally:
                self._lock.release()
        else:
            self._overflow.append((key, amount))
        if self._flusher is None:
            self._start_flushing()

    def decided(self, verdict: Verdict) -> None:
        decision = verdict.result.decision
        if not decision.allowed:
            self._add((DECISIONS, "denied", decision.policy, str(decision.status)))
            if decision.policy == THROTTLE:
                self._add((THROTTLED,))
        elif verdict.allowance is not None and not verdict.allowance.allowed:
            self._add(RATE_LIMITED_DECISION)
            self._add((RATE_LIMITED,))
        else:
            self._add(ALLOWED_DECISION)

    def key_verified(self, cached: bool) -> None:
        self._add(HIT if cached else MISS)

    def events(self, types: Iterable[str]) -> None:
        for name in types:
            self._add((APPENDED, name))

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "other"
        bucket = bisect_left(DURATION_BUCKETS, seconds)
        counted: tuple[tuple[tuple[Any, ...], float], ...] = (
            ((REQUESTS, method, route, status), 1.0),
            ((BUCKET, route, bucket), 1.0),
            ((SUM, route), seconds),
        )
        if self._lock.acquire(blocking=False):  # never waited for (``_add``)
            try:
                pending = self._pending
                for key, amount in counted:
                    pending[key] = pending.get(key, 0.0) + amount
            finally:
                self._lock.release()
        else:
            self._overflow.extend(counted)
        if self._flusher is None:
            self._start_flushing()

    # -- handing over to prometheus_client -------------------------------------------------
    def flush(self) -> None:
        """Add what was counted since the last flush to the library's values."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            while self._overflow:  # what was counted while the lock was busy
                key, amount = self._overflow.popleft()
                pending[key] = pending.get(key, 0.0) + amount
            for key, amount in pending.items():
                self._sink(key, amount)

    def _sink(self, key: tuple[Any, ...], amount: float) -> None:
        kind = key[0]
        if kind == BUCKET:
            # One observation per bucket, as Histogram.observe records it (the
            # bucket, then the sum, which SUM adds): the same values, one write.
            self.durations.labels(key[1])._buckets[key[2]].inc(amount)
        elif kind == SUM:
            self.durations.labels(key[1])._sum.inc(amount)
        else:
            metric = getattr(self, kind)
            (metric.labels(*key[1:]) if len(key) > 1 else metric).inc(amount)

    def _start_flushing(self) -> None:
        with self._flush_lock:
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_forever, name="keyledger-metrics", daemon=True
                )
                self._flusher.start()
                at_exit(self.flush)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.flush_every)
            try:
                self.flush()
            except Exception:  # a damaged metrics file must not stop the counting
                log.exception("metrics: flush failed")

    def _forked(self) -> None:
        """In a forked child: counts pending in the parent are the parent's to flush."""
        self._pending = {}
        self._overflow = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flusher = None


_web_metrics: WebMetrics | None = None
_web_lock = threading.Lock()


def web_metrics() -> WebMetrics:
    """This process's web counters (created once: several apps in one process share them)."""
    global _web_metrics
    with _web_lock:
        if _web_metrics is None:
            disable_created_metrics()  # type: ignore[no-untyped-call]  # as in multiprocess mode: one series per count
            _web_metrics = WebMetrics(CollectorRegistry(auto_describe=True))
        return _web_metrics


class _Collected:
    """Adapts a registry (or a multiprocess directory) into one collector of a scrape."""

    def __init__(self, source: CollectorRegistry | None):
        self.source = source

    def collect(self) -> Iterator[Metric]:
        if self.source is not None:
            yield from self.source.collect()


def scrape_registry(own: CollectorRegistry | None, *collectors: Collector) -> CollectorRegistry:
    """A registry for one scrape: this process's metrics (or, in multiprocess mode, every
    web process's), plus collectors that read their values now."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory is not None and own is not None:
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Collected(own))
    for collector in collectors:
        registry.register(collector)
    return registry


def gauge(name: str, documentation: str, label: str | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=[label] if label else None)


def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
