"""A request Redis counted inside its window is admitted, even when the window (or the
lease's life) ends while the answer is on its way back (a 429 at a minute boundary
with a limit of 10**9: bench's 'Non-2xx or 3xx responses: 1' on GET /v1/).

The script's answers are played here so that each edge happens every time, in the
order that made it: the same cases run against a real Redis in
tests/integration/test_rate_limit_leases.py (a late answer; window boundaries under
load), where the order of two threads' answers cannot be chosen."""

from __future__ import annotations

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.ratelimit import RateLimiter, _Grant
from tests.clocks import MonotonicClock

KEY = "00aaaaaaaaaaaaaa"
WINDOW = 29_935_000  # some minute of the Redis clock


class LeaseScript:
    """Stands in for the Redis client: the lease script answers as told, and the reply
    takes ``latency`` seconds of the process's monotonic clock to come back."""

    def __init__(self, clock: MonotonicClock) -> None:
        self.clock = clock
        self.answers: list[tuple[int, int, int, int]] = []
        self.latency = 0.0005

    def register_script(self, _source: str) -> object:
        def run(keys: list[str], args: list[object]) -> list[int]:
            self.clock.now += self.latency
            return list(self.answers.pop(0))

        return run


def make() -> tuple[RateLimiter, LeaseScript]:
    clock = MonotonicClock()
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
    clock = MonotonicClock()
    script = LeaseScript(clock)
    small = RateLimiter(script, Keyspace(), 5, background=False, monotonic=clock)  # type: ignore[arg-type]
    script.answers.append((0, 5, 30_000, WINDOW))
    refused = small.hit(KEY)
    assert not refused.allowed and refused.retry_after == 30


def test_the_remaining_count_never_exceeds_the_limit_when_answers_cross() -> None:
    """Two threads' calls on two connections: B is sent first but Redis runs A first, and
    B's answer is merged first. A's count (older) then names what was unleased while the
    lease holds both grants: the sum said 1,199 of 1,000 (an outside attack saw 1,002)."""
    limiter, _script = make()
    limiter.per_minute = 1000
    b = _Grant(granted=200, count=400, ms_left=30_000, window=WINDOW, sent=1000.0, wanted=200)
    a = _Grant(granted=200, count=200, ms_left=30_001, window=WINDOW, sent=1000.001, wanted=200)
    limiter._merge(KEY, b)
    lease = limiter._merge(KEY, a)
    assert lease is not None and lease.left == 400
    allowance = limiter._spend(lease, 1000.002)
    assert allowance.allowed and allowance.remaining <= 999
