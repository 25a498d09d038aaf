"""Failure throttling: per source (IPv6 by /64) and per source and key id."""

from __future__ import annotations

from keyledger.authn.throttle import FailureThrottle, ThrottleLimits, source_group


def test_an_ipv6_source_counts_as_its_slash_64() -> None:
    assert source_group("2001:db8:1:2:aaaa::1") == source_group("2001:db8:1:2:bbbb::9")
    assert source_group("2001:db8:1:2::1") != source_group("2001:db8:1:3::1")
    assert source_group("::ffff:10.0.0.1") == "10.0.0.1"
    assert source_group("10.0.0.1") == "10.0.0.1"


def test_rotating_through_a_slash_64_does_not_dodge_the_limit() -> None:
    throttle = FailureThrottle(ThrottleLimits(failures_per_source=3), clock=lambda: 120.0)
    for n in range(3):
        throttle.failed(f"2001:db8::{n + 1}", ())
    assert throttle.retry_after("2001:db8::ffff", ()) is not None
    assert throttle.retry_after("2001:db9::1", ()) is None


def test_failures_against_one_key_throttle_only_that_key_from_that_source() -> None:
    throttle = FailureThrottle(
        ThrottleLimits(failures_per_source=100, failures_per_source_and_key=2), clock=lambda: 5.0
    )
    throttle.failed("198.51.100.7", ("key-a",))
    throttle.failed("198.51.100.7", ("key-a",))
    assert throttle.retry_after("198.51.100.7", ("key-a",)) == 55
    assert throttle.retry_after("198.51.100.7", ("key-b",)) is None
    assert throttle.retry_after("203.0.113.1", ("key-a",)) is None


def test_a_new_minute_forgets_old_failures() -> None:
    now = [10.0]
    throttle = FailureThrottle(ThrottleLimits(failures_per_source=1), clock=lambda: now[0])
    throttle.failed("192.0.2.1", ())
    assert throttle.retry_after("192.0.2.1", ()) is not None
    now[0] = 70.0
    assert throttle.retry_after("192.0.2.1", ()) is None
