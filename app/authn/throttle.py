"""Throttles repeated authentication failures before any lookup or argon2 work.

Counted per source address and per (source address, key id), in fixed one-minute
windows, in process memory (each web process counts on its own). A flood of bad
secrets against one key id throttles the sources sending them, not the key: its
real owner, calling from elsewhere, is not locked out. When the tables are full
(a flood from very many addresses) new sources are not tracked rather than
refused, and the argon2 concurrency cap bounds the CPU spent.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


def source_group(source: str) -> str:
    """Who counts as one source: an IPv4 address, or an IPv6 /64 (one subscriber's
    network), so an attacker cannot dodge the limit by rotating through its /64."""
    if ":" not in source:
        return source
    try:
        address = ipaddress.IPv6Address(source)
    except ValueError:
        return source
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))


@dataclass(frozen=True)
class ThrottleLimits:
    failures_per_source: int = 60
    failures_per_source_and_key: int = 10
    max_tracked: int = 100_000


class FailureThrottle:
    def __init__(self, limits: ThrottleLimits, clock: Callable[[], float] = time.time):
        self.limits = limits
        self.clock = clock
        self._window = -1
        self._by_source: dict[str, int] = {}
        self._by_pair: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def _roll(self) -> int:
        now = self.clock()
        window = int(now // 60)
        if window != self._window:
            self._window = window
            self._by_source.clear()
            self._by_pair.clear()
        return 60 - int(now % 60)

    def retry_after(self, source: str, key_ids: tuple[str, ...]) -> int | None:
        """Seconds to wait when this source (for these keys) is throttled, else None."""
        if self.limits.failures_per_source <= 0:
            return None
        source = source_group(source)
        with self._lock:
            remaining = self._roll()
            if self._by_source.get(source, 0) >= self.limits.failures_per_source:
                return remaining
            for key_id in key_ids:
                if (
                    self._by_pair.get((source, key_id), 0)
                    >= self.limits.failures_per_source_and_key
                ):
                    return remaining
        return None

    def failed(self, source: str, key_ids: tuple[str, ...]) -> None:
        source = source_group(source)
        with self._lock:
            self._roll()
            if source in self._by_source or len(self._by_source) < self.limits.max_tracked:
                self._by_source[source] = self._by_source.get(source, 0) + 1
            for key_id in key_ids:
                pair = (source, key_id)
                if pair in self._by_pair or len(self._by_pair) < self.limits.max_tracked:
                    self._by_pair[pair] = self._by_pair.get(pair, 0) + 1
