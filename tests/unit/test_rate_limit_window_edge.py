"""A request Redis counted inside its window is admitted, even when the window (or the
lease's life) ends while the answer is on its way back (a 429 at a minute boundary
with a limit of 10**9: bench's 'Non-2xx or 3xx responses: 1' on GET /v1/).

The script's answers are played here so that each edge happens every time, in the
order that made it: the same cases run against a real Redis in
tests/integration/test_rate_limit_leases.py (a late answer; window boundaries under
load), where the order of two threads' answers cannot be chosen."""

from __future__ import annotations

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.ratelimit import RateLimiter

KEY = "00aaaaaaaaaaaaaa"
WINDOW = 29_935_000  # some minute of the Redis clock


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LeaseScript:
    """Stands in for the Redis client: the lease script answers as told, and the reply
    takes ``latency`` seconds of the process's monotonic clock to come back."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.answers: list[tuple[int, int, int, int]] = []
        self.latency = 0.0005

    def register_script(self, _source: str) -> object:
        def run(keys: list[str], args: list[object]) -> list[int]:
            self.clock.now += self.latency
            return list(self.answers.pop(0))

        return run


def make() -> tuple[RateLimiter, LeaseScript]:
    clock = Clock()
    script = LeaseScript(clock)
    limiter = RateLimiter(
        script,  # type: ignore[arg-type]
        Keyspace(),
        10**9,
        background=False,
        monotonic=clock,
    )
    return limiter, script


def test_a_grant_from_the_last_millisecond_of_a_window_admits_its_request() -> None:
    limiter, script = make()
    # Redis ran the script in the window's last millisecond (ms_left 1) and granted 200
    # slices; the reply comes back 2 ms after the call was sent, past the window's end.
    script.latency = 0.002
    script.answers.append((200, 4_000, 1, WINDOW))
    allowance = limiter.hit(KEY)
    assert allowance.allowed, allowance
    assert allowance.window == WINDOW
    # The next request, in the new window, is admitted as well.
    script.answers.append((1, 1, 59_999, WINDOW + 1))
    assert limiter.hit(KEY).allowed


def test_a_grant_for_a_window_a_newer_lease_replaced_admits_its_request() -> None:
    """Two threads call Redis around the boundary; the newer window's answer is merged
    first (seen here as: the process already holds an emptied lease of WINDOW + 1)."""
    limiter, script = make()
    script.answers.append((1, 1, 59_999, WINDOW + 1))
    assert limiter.hit(KEY).allowed  # lease of WINDOW + 1, now empty
    script.answers.append((2, 4_002, 1, WINDOW))  # a late answer from the old window
    allowance = limiter.hit(KEY)
    assert allowance.allowed, allowance


def test_a_window_with_nothing_left_still_refuses() -> None:
    clock = Clock()
    script = LeaseScript(clock)
    small = RateLimiter(script, Keyspace(), 5, background=False, monotonic=clock)  # type: ignore[arg-type]
    script.answers.append((0, 5, 30_000, WINDOW))
    refused = small.hit(KEY)
    assert not refused.allowed and refused.retry_after == 30
