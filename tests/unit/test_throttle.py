"""Failure throttling: what counts as one source and one network, the per-minute counts,
the ceiling on failed verifications, and the order in which they are asked (no Redis)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from keyledger.authn.throttle import (
    FailureThrottle,
    Subject,
    Tally,
    Throttle,
    ThrottleLimits,
    VerificationCeiling,
    network_of,
    source_group,
)


def subject(source: str, *key_ids: str) -> Subject:
    return Subject.of(source, key_ids)


# -- who counts as one source, and as one network ------------------------------------------
def test_an_ipv6_source_counts_as_its_slash_64() -> None:
    assert source_group("2001:db8:1:2:aaaa::1") == source_group("2001:db8:1:2:bbbb::9")
    assert source_group("2001:db8:1:2::1") != source_group("2001:db8:1:3::1")
    assert source_group("::ffff:10.0.0.1") == "10.0.0.1"
    assert source_group("10.0.0.1") == "10.0.0.1"


@pytest.mark.parametrize(
    ("source", "network"),
    [
        ("10.2.5.7", "10.2.5.0/24"),
        ("10.2.5.255", "10.2.5.0/24"),
        ("::ffff:10.2.5.7", "10.2.5.0/24"),
        ("::ffff:a02:507", "10.2.5.0/24"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1::/48"),
        ("2001:db8:1:ffff::1", "2001:db8:1::/48"),
        ("-", "-"),
    ],
)
def test_a_source_belongs_to_its_ipv4_slash_24_or_ipv6_slash_48(source: str, network: str) -> None:
    assert network_of(source) == network


@pytest.mark.parametrize("junk", ["", "-", "garbage", "10.0.0.1%eth0", "10." + "1" * 10_000])
def test_every_missing_or_malformed_address_is_one_source_in_one_network(junk: str) -> None:
    assert source_group(junk) == network_of(junk) == "-"


def test_rotating_through_junk_addresses_does_not_dodge_the_limit() -> None:
    throttle = FailureThrottle(ThrottleLimits(failures_per_source=3), clock=lambda: 0.0)
    for junk in ("a", "b", "c"):
        throttle.failed(subject(junk))
    assert throttle.retry_after(subject("d")) is not None


def test_neighbouring_networks_are_different_networks() -> None:
    assert network_of("10.2.5.7") != network_of("10.2.6.7")
    assert network_of("2001:db8:1::1") != network_of("2001:db8:2::1")


# -- counts per minute ------------------------------------------------------------------------
def test_rotating_through_a_slash_64_does_not_dodge_the_limit() -> None:
    throttle = FailureThrottle(ThrottleLimits(failures_per_source=3), clock=lambda: 120.0)
    for n in range(3):
        throttle.failed(subject(f"2001:db8::{n + 1}"))
    assert throttle.retry_after(subject("2001:db8::ffff")) is not None
    assert throttle.retry_after(subject("2001:db9::1")) is None


def test_rotating_through_a_slash_24_is_throttled_by_the_network_count() -> None:
    limits = ThrottleLimits(failures_per_source=100, failures_per_network=5)
    throttle = FailureThrottle(limits, clock=lambda: 120.0)
    for n in range(5):
        throttle.failed(subject(f"198.51.100.{n + 1}"))
        assert throttle.retry_after(subject(f"198.51.100.{n + 1}")) == (60 if n == 4 else None)
    assert throttle.retry_after(subject("198.51.100.200")) == 60
    assert throttle.retry_after(subject("198.51.101.1")) is None


def test_rotating_through_a_slash_48_is_throttled_by_the_network_count() -> None:
    limits = ThrottleLimits(failures_per_source=100, failures_per_network=4)
    throttle = FailureThrottle(limits, clock=lambda: 120.0)
    for n in range(4):
        throttle.failed(subject(f"2001:db8:7:{n}::1"))  # four different /64s
    assert throttle.retry_after(subject("2001:db8:7:ffff::1")) is not None
    assert throttle.retry_after(subject("2001:db8:8::1")) is None


def test_failures_against_one_key_throttle_only_that_key_from_that_source() -> None:
    throttle = FailureThrottle(
        ThrottleLimits(failures_per_source=100, failures_per_source_and_key=2), clock=lambda: 5.0
    )
    throttle.failed(subject("198.51.100.7", "key-a"))
    throttle.failed(subject("198.51.100.7", "key-a"))
    assert throttle.retry_after(subject("198.51.100.7", "key-a")) == 55
    assert throttle.retry_after(subject("198.51.100.7", "key-b")) is None
    assert throttle.retry_after(subject("203.0.113.1", "key-a")) is None


def test_a_new_minute_forgets_old_failures() -> None:
    now = [10.0]
    throttle = FailureThrottle(ThrottleLimits(failures_per_source=1), clock=lambda: now[0])
    throttle.failed(subject("192.0.2.1"))
    assert throttle.retry_after(subject("192.0.2.1")) is not None
    now[0] = 70.0
    assert throttle.retry_after(subject("192.0.2.1")) is None


def test_counts_learned_from_other_processes_throttle_here_without_asking() -> None:
    throttle = FailureThrottle(ThrottleLimits(failures_per_source=3), clock=lambda: 0.0)
    who = subject("192.0.2.1", "key-a")
    throttle.learn(who, Tally(network=3, source=3, pairs=(3,), retry_after=40))
    assert throttle.retry_after(who) is not None
    throttle.learn(who, Tally(network=0, source=0, pairs=(0,), retry_after=40))
    assert throttle.retry_after(who) is not None  # learning never lowers a count


def test_a_full_table_stops_tracking_new_sources_rather_than_refusing_them() -> None:
    limits = ThrottleLimits(failures_per_source=1, failures_per_network=1, max_tracked=2)
    throttle = FailureThrottle(limits, clock=lambda: 0.0)
    throttle.failed(subject("192.0.2.1"))
    throttle.failed(subject("198.51.100.1"))
    throttle.failed(subject("203.0.113.1"))
    assert throttle.retry_after(subject("192.0.2.1")) is not None
    assert throttle.retry_after(subject("203.0.113.1")) is None


def test_a_limit_of_zero_failures_per_source_turns_the_counting_off() -> None:
    throttle = FailureThrottle(ThrottleLimits(failures_per_source=0), clock=lambda: 0.0)
    for _ in range(50):
        throttle.failed(subject("192.0.2.1", "key-a"))
    assert throttle.retry_after(subject("192.0.2.1", "key-a")) is None


# -- the ceiling on failed verifications per second -------------------------------------------
def test_the_ceiling_allows_n_verifications_per_second_then_asks_to_wait() -> None:
    now = [100.0]
    ceiling = VerificationCeiling(3, clock=lambda: now[0])
    assert [ceiling.take() for _ in range(4)] == [None, None, None, 1]
    now[0] += 0.34  # a third of a second (and a little): one token
    assert ceiling.take() is None
    assert ceiling.take() == 1


def test_a_successful_verification_gives_its_token_back() -> None:
    ceiling = VerificationCeiling(2, clock=lambda: 0.0)
    for _ in range(20):
        assert ceiling.take() is None
        ceiling.give_back()
    assert [ceiling.take() for _ in range(3)] == [None, None, 1]


def test_the_ceiling_never_saves_up_more_than_one_second() -> None:
    now = [0.0]
    ceiling = VerificationCeiling(2, clock=lambda: now[0])
    now[0] = 3600.0
    assert [ceiling.take() for _ in range(3)] == [None, None, 1]
    for _ in range(5):
        ceiling.give_back()
    assert [ceiling.take() for _ in range(3)] == [None, None, 1]


def test_a_ceiling_of_zero_is_off() -> None:
    ceiling = VerificationCeiling(0, clock=lambda: 0.0)
    assert all(ceiling.take() is None for _ in range(1000))


# -- the order: memory, then the ceiling, then the shared counts --------------------------------
@dataclass
class CountsInMemory:
    """Shared counts as one dict (the real ones are in Redis: tests/integration)."""

    counts: dict[str, int] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def _tally(self, s: Subject) -> Tally:
        pairs = tuple(self.counts.get(f"p:{s.source}|{k}", 0) for k in s.key_ids)
        return Tally(
            self.counts.get(f"n:{s.network}", 0), self.counts.get(f"s:{s.source}", 0), pairs, 30
        )

    def read(self, s: Subject) -> Tally:
        self.calls.append("read")
        return self._tally(s)

    def add(self, s: Subject) -> Tally:
        self.calls.append("add")
        for name in (f"n:{s.network}", f"s:{s.source}", *(f"p:{s.source}|{k}" for k in s.key_ids)):
            self.counts[name] = self.counts.get(name, 0) + 1
        return self._tally(s)


def throttle_with(shared: CountsInMemory, **limits: int) -> Throttle:
    return Throttle(ThrottleLimits(**limits), shared, clock=lambda: 0.0, monotonic=lambda: 0.0)


def test_failures_without_hashing_are_counted_in_memory_only() -> None:
    shared = CountsInMemory()
    throttle = throttle_with(shared, failures_per_source=2)
    who = subject("192.0.2.1")
    throttle.failed(who, hashed=False)
    throttle.failed(who, hashed=False)
    assert throttle.before_lookup(who) is not None
    assert shared.calls == []


def test_failures_after_hashing_are_counted_where_every_process_sees_them() -> None:
    shared = CountsInMemory()
    here, there = throttle_with(shared, failures_per_source=2), throttle_with(shared)
    who = subject("192.0.2.1", "key-a")
    assert there.before_hashing(who) is None
    there.failed(who, hashed=True)
    assert there.before_hashing(who) is None
    there.failed(who, hashed=True)

    assert here.before_lookup(who) is None  # this process saw nothing itself ...
    assert here.before_hashing(who) == 30  # ... and learns it before hashing
    assert here.before_lookup(who) == 60  # then refuses without asking again
    assert shared.calls == ["read", "add", "read", "add", "read"]


def test_past_the_ceiling_no_shared_count_is_asked_and_nothing_hashes() -> None:
    shared = CountsInMemory()
    throttle = throttle_with(shared, failed_verifications_per_second=2)
    assert throttle.before_hashing(subject("192.0.2.1")) is None
    assert throttle.before_hashing(subject("198.51.100.1")) is None
    assert throttle.before_hashing(subject("203.0.113.1")) == 1
    assert shared.calls == ["read", "read"]


def test_a_throttled_subject_does_not_use_up_the_ceiling() -> None:
    shared = CountsInMemory({"s:192.0.2.1": 100})
    throttle = throttle_with(shared, failed_verifications_per_second=1)
    for _ in range(5):
        assert throttle.before_hashing(subject("192.0.2.1")) == 30
    assert throttle.before_hashing(subject("198.51.100.1")) is None


def test_a_verified_key_gives_the_ceiling_back() -> None:
    throttle = throttle_with(CountsInMemory(), failed_verifications_per_second=1)
    for _ in range(5):
        assert throttle.before_hashing(subject("192.0.2.1")) is None
        throttle.verified()
    assert throttle.before_hashing(subject("192.0.2.1")) is None
    assert throttle.before_hashing(subject("192.0.2.1")) == 1
