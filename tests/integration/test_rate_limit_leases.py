"""The rate limit's leases (docs/rate-limits.md): each ``RateLimiter`` here stands for
one web process; they share nothing but the test's Redis.

What must hold: never more than the limit in a window, whatever the processes and
threads; no lease spent outside the window it was leased for, nor longer than
``LEASE_SECONDS`` after Redis last answered; small limits exact; the remaining
count honest to within the lease size; a client past the limit gets 429 with
``Retry-After``; slices of an expired lease go back to the window.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

import pytest
import redis

from keyledger.adapters.keyspace import Keyspace
from keyledger.adapters.ratelimit import (
    LEASE_DIVISOR,
    LEASE_SECONDS,
    MAX_LEASE,
    Allowance,
    RateLimiter,
)
from keyledger.adapters.redis_client import connect
from keyledger.config import Settings
from keyledger.domain.errors import StoreUnavailable
from keyledger.domain.tokens import KeyKind, generate
from tests.clocks import MonotonicClock

T = TypeVar("T")


def account_key_id() -> str:
    return generate(KeyKind.ACCOUNT, 0).token[5:21]


def limiters(settings: Settings, limit: int, count: int, **options: object) -> list[RateLimiter]:
    """``count`` processes' limiters: a client (connection pool) each."""
    keyspace = Keyspace(settings.namespace, settings.partitions, settings.partition_tags)
    return [
        RateLimiter(connect(settings.redis_url, timeout=2.0), keyspace, limit, **options)  # type: ignore[arg-type]
        for _ in range(count)
    ]


def in_one_window(redis_client: redis.Redis, check: Callable[[], T], margin: float = 20) -> T:
    """Run ``check`` inside one minute of the Redis server's clock."""
    seconds, micros = redis_client.time()
    into = (seconds + micros / 1e6) % 60
    if into > 60 - margin:
        time.sleep(60 - into + 0.05)
    window = redis_client.time()[0] // 60
    result = check()
    assert redis_client.time()[0] // 60 == window, "the check took longer than its margin"
    return result


def hammer(
    limiters_: list[RateLimiter], key: str, threads_each: int, seconds: float
) -> list[tuple[Allowance, float, float]]:
    """Every limiter hit by ``threads_each`` threads for ``seconds``; each allowance with
    the wall-clock moments just before and after it was decided."""
    seen: list[tuple[Allowance, float, float]] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run(limiter: RateLimiter) -> None:
        mine: list[tuple[Allowance, float, float]] = []
        while time.monotonic() < stop:
            before = time.time()
            allowance = limiter.hit(key)
            mine.append((allowance, before, time.time()))
        with lock:
            seen.extend(mine)

    workers = [
        threading.Thread(target=run, args=(limiter,))
        for limiter in limiters_
        for _ in range(threads_each)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=seconds + 30)
    return seen


def test_several_processes_hammering_one_key_never_pass_the_limit_in_a_window(
    settings: Settings, redis_client: redis.Redis
) -> None:
    limit, processes = 1000, 4
    group = limiters(settings, limit, processes)
    key = account_key_id()

    seen = in_one_window(redis_client, lambda: hammer(group, key, 2, 3.0))

    admitted = [a for a, _, _ in seen if a.allowed]
    assert len(admitted) <= limit
    # What the leases cost: at most one lease per process left unspent (under-admission).
    assert len(admitted) >= limit - processes * (limit // LEASE_DIVISOR)
    assert sum(lim.calls + lim.background_calls for lim in group) < len(admitted) / 5
    refused = [a for a, _, _ in seen if not a.allowed]
    assert refused and all(1 <= a.retry_after <= 60 and a.remaining == 0 for a in refused)


def test_with_short_windows_no_lease_is_spent_outside_its_window(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """One-second windows for 3.5 s: each window admits at most the limit, and every
    request admitted in a window was decided while that window ran (Redis's clock is
    this machine's clock here)."""
    limit, processes = 200, 3
    group = limiters(settings, limit, processes, window_seconds=1)
    key = account_key_id()

    seen = hammer(group, key, 2, 3.5)

    per_window = Counter(a.window for a, _, _ in seen if a.allowed)
    assert len(per_window) >= 3
    assert max(per_window.values()) <= limit
    for allowance, before, after in seen:
        if allowance.allowed:
            assert allowance.window is not None
            assert before < allowance.window + 1, "spent after its window ended"
            assert after >= allowance.window, "counted in a window not begun"


def test_a_lease_is_not_spent_past_its_lifetime_nor_its_window(
    settings: Settings, redis_client: redis.Redis
) -> None:
    clock = MonotonicClock()
    (limiter,) = limiters(settings, 10_000, 1, background=False, monotonic=clock)
    key = account_key_id()
    for _ in range(20):  # leases grow with the use: 1, 2, 4, 8, 16 ...
        assert limiter.hit(key).allowed
    calls = limiter.calls
    assert limiter.hit(key).allowed and limiter.calls == calls  # from the lease held

    clock.now += LEASE_SECONDS  # Redis has not answered for a lease's life: ask again
    assert limiter.hit(key).allowed and limiter.calls == calls + 1
    assert limiter.hit(key).allowed and limiter.calls == calls + 1

    clock.now += 0.9 * LEASE_SECONDS  # still within the new lease's life
    assert limiter.hit(key).allowed and limiter.calls == calls + 1
    clock.now += 61  # and past any window: never spent there
    assert limiter.hit(key).allowed and limiter.calls == calls + 2


def test_small_limits_stay_exact_across_processes(
    settings: Settings, redis_client: redis.Redis
) -> None:
    limit = 6
    group = limiters(settings, limit, 3, background=False)
    key = account_key_id()

    def run() -> list[Allowance]:
        return [group[n % 3].hit(key) for n in range(limit + 3)]

    answers = in_one_window(redis_client, run)

    assert [a.allowed for a in answers] == [True] * limit + [False] * 3
    assert [a.remaining for a in answers[:limit]] == list(range(limit - 1, -1, -1))
    assert all(1 <= a.retry_after <= 60 for a in answers[limit:])


def test_one_process_reports_exactly_what_remains(
    settings: Settings, redis_client: redis.Redis
) -> None:
    limit = 1000
    (limiter,) = limiters(settings, limit, 1, background=False)
    key = account_key_id()

    answers = in_one_window(redis_client, lambda: [limiter.hit(key) for _ in range(300)])

    assert [a.remaining for a in answers] == [limit - n for n in range(1, 301)]
    assert limiter.calls < 30


def test_the_remaining_count_is_honest_to_within_the_lease_size(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """Several processes taking turns: each one's figure is off by at most the leases
    the others hold or took since it last asked (one each), never more."""
    limit, processes = 1000, 3
    group = limiters(settings, limit, processes, background=False)
    key = account_key_id()
    lease_size = limit // LEASE_DIVISOR

    def run() -> list[tuple[Allowance, int]]:
        answers, admitted = [], 0
        for n in range(limit + 50):
            allowance = group[(n // 7) % processes].hit(key)
            admitted += allowance.allowed
            answers.append((allowance, limit - admitted))
        return answers

    answers = in_one_window(redis_client, run)

    admitted = [(a, truth) for a, truth in answers if a.allowed]
    assert len(admitted) <= limit
    for allowance, truth in admitted:
        assert abs(allowance.remaining - truth) <= (processes - 1) * lease_size
    refused = [a for a, _ in answers if not a.allowed]
    assert refused and all(1 <= a.retry_after <= 60 for a in refused)


def test_slices_of_an_expired_lease_go_back_to_the_window(
    settings: Settings, redis_client: redis.Redis
) -> None:
    limit = 100
    clock = MonotonicClock()
    (holder,) = limiters(settings, limit, 1, background=False, monotonic=clock)
    (other,) = limiters(settings, limit, 1, background=False)
    key = account_key_id()

    def run() -> int:
        admitted = sum(holder.hit(key).allowed for _ in range(8))  # holds a few slices now
        clock.now += LEASE_SECONDS  # its lease expires unspent ...
        admitted += sum(other.hit(key).allowed for _ in range(limit))
        admitted += sum(holder.hit(key).allowed for _ in range(limit))  # ... and goes back
        admitted += sum(other.hit(key).allowed for _ in range(limit))
        return admitted

    assert in_one_window(redis_client, run) == limit


def test_a_failed_renewal_ends_the_lease(settings: Settings, redis_client: redis.Redis) -> None:
    """A lease renewed in the background that cannot reach Redis is dropped: the next
    request asks Redis itself (and gets a 503 while it cannot)."""
    (limiter,) = limiters(settings, 10_000, 1, background=False)
    key = account_key_id()
    for _ in range(40):
        limiter.hit(key)
    pool = limiter.client.connection_pool  # type: ignore[union-attr]
    pool.connection_kwargs["port"] = 1  # Redis is gone (nobody listens there)
    pool.reset()
    limiter.renew(key)
    with pytest.raises(StoreUnavailable):
        limiter.hit(key)


def test_background_renewal_keeps_requests_off_redis(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """A busy key's lease is topped up before it runs out: after the first few leases
    (they grow with the use), requests no longer wait on Redis."""
    (limiter,) = limiters(settings, 10**9, 1)
    key = account_key_id()
    for _ in range(3000):
        assert limiter.hit(key).allowed
        time.sleep(0.0001)  # a request's own I/O: the renewing thread gets its turn
    assert limiter.calls <= 12, (limiter.calls, limiter.background_calls)
    assert limiter.background_calls >= 3000 // 200 - 12


def test_a_request_redis_counted_is_admitted_when_the_answer_comes_back_late(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """The script counts the request that asked inside the window, as it runs; an answer
    that comes back after the lease's life (or the window's end) still admits that
    request, and the rest of the grant is given back, never spent: the limit stays
    exact. Before, that request got 429 (bench: at a minute boundary, limit 10**9)."""
    limit = 40
    clock = MonotonicClock()
    (limiter,) = limiters(settings, limit, 1, background=False, monotonic=clock)
    script = limiter._lease
    late = [True]

    def answered_late(*args: object, **kwargs: object) -> object:
        if late[0]:
            clock.now += LEASE_SECONDS + 0.5  # longer than a lease lives
        return script(*args, **kwargs)

    limiter._lease = answered_late  # type: ignore[assignment]
    key = account_key_id()

    def run() -> list[Allowance]:
        answers = [limiter.hit(key) for _ in range(5)]
        late[0] = False
        return answers + [limiter.hit(key) for _ in range(limit)]

    answers = in_one_window(redis_client, run)

    assert all(a.allowed for a in answers[:5]), answers[:5]
    assert sum(a.allowed for a in answers) == limit  # exact: nothing lost, nothing more
    assert not answers[-1].allowed and 1 <= answers[-1].retry_after <= 60


def test_a_limit_nobody_reaches_refuses_nothing_across_window_boundaries(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """One-second windows, two processes of three threads: every boundary falls while
    requests are in flight, and none of them is refused."""
    group = limiters(settings, 10**9, 2, window_seconds=1)
    seen = hammer(group, account_key_id(), 3, 4.5)
    refused = [(a, before) for a, before, _ in seen if not a.allowed]
    assert not refused, refused[:5]


def test_the_time_left_in_a_window_is_never_overstated(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """A lease ends ``ms_left`` after its call was sent, so ``ms_left`` must not exceed
    what the window had left when the script ran. It was rounded up (the elapsed
    microseconds rounded down) by up to 1 ms: processes spent the old window's slices
    for up to 0.7 ms into the next one, which then admitted 1002 of 1000 (an outside
    attack, two servers, a flood at the boundary)."""
    (limiter,) = limiters(settings, 10**9, 1, window_seconds=1)
    key = limiter.keys.rate_limit(account_key_id(), "")
    overstated = []
    for _ in range(300):
        seconds, micros = redis_client.time()  # at or before the script runs
        _granted, _count, ms_left, window = limiter._lease(
            keys=[key], args=[10**9, 1, LEASE_DIVISOR, MAX_LEASE, 1, "", 0, 0]
        )
        left_us = (int(window) + 1) * 1_000_000 - (seconds * 1_000_000 + micros)
        if int(ms_left) * 1000 > left_us:
            overstated.append((int(ms_left), left_us))
    assert not overstated, overstated[:5]
