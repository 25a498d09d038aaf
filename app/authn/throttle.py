"""Throttles repeated authentication failures, and bounds the hashing they can cost.

A well-formed key is easy to make (its checksum is no secret) and each refusal
of one costs a full argon2 verification, so failures are limited three ways:

- **Counts per minute** (fixed windows) per source (an IPv4 address or IPv6 /64),
  per network (IPv4 /24, IPv6 /48: one attacker's neighbourhood) and per
  (source, key id). Past a limit the source gets 429 before any lookup or hashing.
  A flood of bad secrets against one key id throttles the sources sending them,
  not the key: its real owner, calling from elsewhere, is not locked out.
- **Shared across processes** through Redis (``SharedFailureCounts``), but only
  where hashing would run anyway: a request whose keys this process has already
  verified costs no round trip. Failures that cost nothing (malformed keys) are
  counted in process memory only, so they need no Redis either.
- **A ceiling per process** on failed verifications per second: past it, a
  request that would need a fresh argon2 verification is answered 429 without
  hashing, whoever sends it, while keys this process has already verified keep
  being served. It bounds the CPU a flood from very many networks can burn.

When the in-memory tables are full (a flood from very many addresses) new
sources are not tracked there; the shared counts and the ceiling still apply.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from keyledger.domain.network import client_address

WINDOW = 60  # seconds
_K = TypeVar("_K", str, tuple[str, str])


UNKNOWN_SOURCE = "-"


def source_group(source: str) -> str:
    """Who counts as one source: an IPv4 address, or an IPv6 /64 (one subscriber's
    network), so an attacker cannot dodge the limit by rotating through its /64.
    Every missing or malformed address is one source, "-": rotating through junk
    values dodges nothing either, and no junk reaches a Redis key name."""
    return _source_group(source) if len(source) <= MAX_ADDRESS else UNKNOWN_SOURCE


def network_of(source: str) -> str:
    """The wider network a source belongs to for counting: IPv4 /24, IPv6 /48."""
    return _network_of(source) if len(source) <= MAX_ADDRESS else UNKNOWN_SOURCE


#: Every request asks both of its source (parsing an address costs about 10 us): the
#: answers for recent sources are remembered; longer strings are no address at all.
MAX_ADDRESS = 64
REMEMBERED_SOURCES = 4096


@functools.lru_cache(maxsize=REMEMBERED_SOURCES)
def _source_group(source: str) -> str:
    address = client_address(source)
    if address is None:
        return UNKNOWN_SOURCE
    if address.version == 4:
        return str(address)
    return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))


@functools.lru_cache(maxsize=REMEMBERED_SOURCES)
def _network_of(source: str) -> str:
    address = client_address(source)
    if address is None:
        return UNKNOWN_SOURCE
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network((address, bits), strict=False))


@dataclass(frozen=True)
class Subject:
    """What one failure counts against."""

    network: str
    source: str
    key_ids: tuple[str, ...]

    @classmethod
    def of(cls, source: str, key_ids: tuple[str, ...]) -> Subject:
        return cls(network_of(source), source_group(source), key_ids)


@dataclass(frozen=True)
class Tally:
    """Failures of a subject in the current window, and the seconds left in it."""

    network: int
    source: int
    pairs: tuple[int, ...]
    retry_after: int


@dataclass(frozen=True)
class ThrottleLimits:
    failures_per_source: int = 60
    failures_per_source_and_key: int = 10
    failures_per_network: int = 240
    failed_verifications_per_second: int = 20
    max_tracked: int = 100_000

    @property
    def counting(self) -> bool:
        """Failure counting is on (``failures_per_source`` of 0 turns it off)."""
        return self.failures_per_source > 0

    def exceeded(self, tally: Tally) -> bool:
        return (
            tally.source >= self.failures_per_source
            or tally.network >= self.failures_per_network
            or any(count >= self.failures_per_source_and_key for count in tally.pairs)
        )


class SharedCounts(Protocol):
    """Failure counts every process sees (``keyledger.adapters.failures``)."""

    def read(self, subject: Subject) -> Tally: ...

    def add(self, subject: Subject) -> Tally: ...


class FailureThrottle:
    """Counts in this process's memory, per fixed one-minute window."""

    def __init__(self, limits: ThrottleLimits, clock: Callable[[], float] = time.time):
        self.limits = limits
        self.clock = clock
        self._window = -1
        self._by_network: dict[str, int] = {}
        self._by_source: dict[str, int] = {}
        self._by_pair: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        #: A subject with no failure counted passes (every limit above zero): the common
        #: case is answered without building its tally.
        self._nothing_counted_passes = not limits.exceeded(Tally(0, 0, (0,), 0))

    def _roll(self) -> int:
        now = self.clock()
        window = int(now // WINDOW)
        if window != self._window:
            self._window = window
            self._by_network.clear()
            self._by_source.clear()
            self._by_pair.clear()
        return WINDOW - int(now % WINDOW)

    def _tally(self, subject: Subject, remaining: int) -> Tally:
        return Tally(
            self._by_network.get(subject.network, 0),
            self._by_source.get(subject.source, 0),
            tuple(self._by_pair.get((subject.source, key), 0) for key in subject.key_ids),
            remaining,
        )

    def retry_after(self, subject: Subject) -> int | None:
        """Seconds to wait when this subject is throttled, else None."""
        if not self.limits.counting:
            return None
        if self._nothing_counted_passes and not (
            self._by_network or self._by_source or self._by_pair
        ):
            # Nothing counted (this window or, if it has just ended, the last): the tally
            # is all zeros. Read without the lock, as every request asks (AuthCache.get).
            return None
        with self._lock:
            tally = self._tally(subject, self._roll())
        return tally.retry_after if self.limits.exceeded(tally) else None

    def failed(self, subject: Subject) -> None:
        self.learn(subject, None)

    def learn(self, subject: Subject, shared: Tally | None) -> None:
        """Count one failure (``shared`` None), or raise the counts to what every process
        has seen, so that a subject throttled elsewhere is refused here without asking."""
        if shared is None:
            step, floor = 1, Tally(0, 0, (0,) * len(subject.key_ids), 0)
        else:
            step, floor = 0, shared
        with self._lock:
            self._roll()
            self._raise(self._by_network, subject.network, step, floor.network)
            self._raise(self._by_source, subject.source, step, floor.source)
            for key, count in zip(subject.key_ids, floor.pairs, strict=True):
                self._raise(self._by_pair, (subject.source, key), step, count)

    def _raise(self, table: dict[_K, int], key: _K, step: int, at_least: int) -> None:
        if key not in table and len(table) >= self.limits.max_tracked:
            return
        table[key] = max(table.get(key, 0) + step, at_least)


class VerificationCeiling:
    """At most N failed argon2 verifications per second in this process (a token bucket).

    A token is taken before a fresh verification and given back when it succeeds,
    so concurrent requests cannot overshoot the ceiling and legitimate first
    verifications cost nothing. ``per_second`` of 0 turns it off.
    """

    def __init__(self, per_second: int, clock: Callable[[], float] = time.monotonic):
        self.per_second = per_second
        self.clock = clock
        self._tokens = float(per_second)
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        elapsed = max(now - self._at, 0.0)
        self._tokens = min(float(self.per_second), self._tokens + elapsed * self.per_second)
        self._at = now

    def take(self) -> int | None:
        """None when a verification may run (a token taken), else seconds to wait."""
        if self.per_second <= 0:
            return None
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return max(1, math.ceil((1 - self._tokens) / self.per_second))

    def give_back(self) -> None:
        if self.per_second <= 0:
            return
        with self._lock:
            self._tokens = min(float(self.per_second), self._tokens + 1)


class Throttle:
    """The three limits together, in the order that costs least.

    ``before_lookup``: memory only, for every request. ``before_hashing``: the
    ceiling, then the shared counts (one Redis round trip), only for a request
    that would run argon2 anyway. ``failed``: memory, and Redis when hashing ran.
    """

    def __init__(
        self,
        limits: ThrottleLimits,
        shared: SharedCounts | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.limits = limits
        self.local = FailureThrottle(limits, clock)
        self.shared = shared
        self.ceiling = VerificationCeiling(limits.failed_verifications_per_second, monotonic)

    def before_lookup(self, subject: Subject) -> int | None:
        return self.local.retry_after(subject)

    def before_hashing(self, subject: Subject) -> int | None:
        """None when a fresh verification may run (then ``verified`` or ``failed`` must
        follow), else seconds to wait. Raises ``StoreUnavailable`` when Redis is down."""
        wait = self.ceiling.take()
        if wait is not None:
            return wait
        if self.shared is None or not self.limits.counting:
            return None
        try:
            tally = self.shared.read(subject)
        except BaseException:
            self.ceiling.give_back()
            raise
        if self.limits.exceeded(tally):
            self.ceiling.give_back()  # nothing was hashed
            self.local.learn(subject, tally)
            return tally.retry_after
        return None

    def verified(self) -> None:
        """Every fresh verification of the request succeeded: not a failure."""
        self.ceiling.give_back()

    def failed(self, subject: Subject, *, hashed: bool) -> None:
        if not self.limits.counting:
            return
        self.local.failed(subject)
        if hashed and self.shared is not None:
            self.local.learn(subject, self.shared.add(subject))
