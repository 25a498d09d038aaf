"""Clocks a test moves by hand."""

from __future__ import annotations


class MonotonicClock:
    """Stands in for ``time.monotonic``: seconds, from 1000.0, moved by setting ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
