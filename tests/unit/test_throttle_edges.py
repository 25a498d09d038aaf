"""Failure throttling at its edges: defaults, boundaries and the ceiling's arithmetic (no Redis).

Each test here kills mutants of ``keyledger.authn.throttle`` that the behaviour tests in
tests/unit/test_throttle.py let through (``make mutate``, docs/mutation.md).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from keyledger.authn.throttle import (
    FailureThrottle,
    Subject,
    Tally,
    ThrottleLimits,
    VerificationCeiling,
    source_group,
)
from keyledger.config import ConfigError, Settings

#: The configuration table lives in the operators' guide.
CONFIGURATION = Path(__file__).resolve().parents[2] / "docs" / "operators.md"


def test_the_default_limits_are_the_documented_ones() -> None:
    documented = {
        name: int(value)
        for name, value in re.findall(
            r"\| `(KEYLEDGER_\w+)` \| `(\d+)` \|", CONFIGURATION.read_text()
        )
    }
    limits = ThrottleLimits()
    assert (
        limits.failures_per_source,
        limits.failures_per_source_and_key,
        limits.failures_per_network,
        limits.failed_verifications_per_second,
    ) == (
        documented["KEYLEDGER_AUTH_FAILURES_PER_MINUTE"],
        documented["KEYLEDGER_AUTH_FAILURES_PER_KEY_MINUTE"],
        documented["KEYLEDGER_AUTH_FAILURES_PER_NETWORK_MINUTE"],
        documented["KEYLEDGER_FAILED_VERIFICATIONS_PER_SECOND"],
    )
    assert Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0"}).throttle == limits


def test_a_window_is_counted_on_its_own_even_when_the_clock_steps_back() -> None:
    # time.time() can step back (NTP); the counts are always those of the window the
    # clock is in, as the shared counts in Redis are (one key per window).
    now = [125.0]
    throttle = FailureThrottle(ThrottleLimits(failures_per_source=2), clock=lambda: now[0])
    who = Subject.of("10.0.0.1", ())
    throttle.failed(who)
    throttle.failed(who)
    assert throttle.retry_after(who) == 55
    now[0] = 65.0
    assert throttle.retry_after(who) is None


def test_failures_seconds_apart_in_one_minute_add_up() -> None:
    now = [120.0]
    throttle = FailureThrottle(ThrottleLimits(failures_per_source=3), clock=lambda: now[0])
    who = Subject.of("10.0.0.1", ())
    for _ in range(3):
        assert throttle.retry_after(who) is None
        throttle.failed(who)
        now[0] += 7.5
    assert throttle.retry_after(who) == 60 - 22  # at 142.5: 37.5 s left, rounded up
    now[0] = 180.0
    assert throttle.retry_after(who) is None


@pytest.mark.parametrize(
    "value",
    [Subject.of("10.0.0.1", ("k",)), Tally(1, 2, (3,), 4), ThrottleLimits()],
    ids=lambda v: type(v).__name__,
)
def test_what_the_throttle_counts_with_cannot_be_changed(value: object) -> None:
    # Subjects and tallies pass between the in-memory and the shared counts.
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, dataclasses.fields(value)[0].name, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "tally",
    [
        Tally(network=240, source=0, pairs=(), retry_after=1),
        Tally(network=1000, source=0, pairs=(), retry_after=1),
        Tally(network=0, source=60, pairs=(), retry_after=1),
        Tally(network=0, source=999, pairs=(), retry_after=1),
        Tally(network=0, source=0, pairs=(0, 10), retry_after=1),
        Tally(network=0, source=0, pairs=(50,), retry_after=1),
    ],
)
def test_a_count_at_or_past_any_limit_is_exceeded(tally: Tally) -> None:
    # Counts from other processes can jump past a limit, not only reach it.
    assert ThrottleLimits().exceeded(tally)


def test_counts_below_every_limit_are_not_exceeded() -> None:
    assert not ThrottleLimits().exceeded(Tally(239, 59, (9, 9), 1))


@pytest.mark.parametrize(
    ("source", "group"),
    [
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:ffff:ffff:ffff:ffff:ffff", "2001:db8:1:ffff::/64"),
        ("fe80::1", "fe80::/64"),
    ],
)
def test_an_ipv6_source_is_named_by_its_slash_64(source: str, group: str) -> None:
    assert source_group(source) == group


@pytest.mark.parametrize(
    "variable",
    [
        "KEYLEDGER_AUTH_FAILURES_PER_MINUTE",
        "KEYLEDGER_AUTH_FAILURES_PER_KEY_MINUTE",
        "KEYLEDGER_AUTH_FAILURES_PER_NETWORK_MINUTE",
    ],
)
def test_a_negative_failure_limit_is_refused(variable: str) -> None:
    # Before, -60 for the per-source limit silently turned failure counting off.
    with pytest.raises(ConfigError, match=f"{variable} must be"):
        Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", variable: "-60"})


@pytest.mark.parametrize(
    "variable",
    ["KEYLEDGER_AUTH_FAILURES_PER_KEY_MINUTE", "KEYLEDGER_AUTH_FAILURES_PER_NETWORK_MINUTE"],
)
def test_a_narrower_failure_limit_of_zero_is_refused(variable: str) -> None:
    # Accepted before, it answered 429 to every request with keys from a source, once
    # anything had failed there: only the per-source limit's 0 means "off".
    with pytest.raises(ConfigError, match=f"{variable} must be 1 or more"):
        Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", variable: "0"})


def test_a_per_source_failure_limit_of_zero_turns_counting_off_and_the_others_unused() -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "KEYLEDGER_AUTH_FAILURES_PER_MINUTE": "0",
            "KEYLEDGER_AUTH_FAILURES_PER_KEY_MINUTE": "0",
            "KEYLEDGER_AUTH_FAILURES_PER_NETWORK_MINUTE": "0",
        }
    )
    assert not settings.throttle.counting


def test_a_key_never_seen_has_no_failures_even_at_a_limit_of_one() -> None:
    throttle = FailureThrottle(ThrottleLimits(failures_per_source_and_key=1), clock=lambda: 120.0)
    assert throttle.retry_after(Subject.of("10.0.0.1", ("k1",))) is None
    throttle.failed(Subject.of("10.0.0.1", ("k1",)))
    assert throttle.retry_after(Subject.of("10.0.0.1", ("k1",))) is not None
    assert throttle.retry_after(Subject.of("10.0.0.1", ("k2",))) is None


def test_a_ceiling_of_one_asks_to_wait_one_second_at_most() -> None:
    now = [0.0]
    ceiling = VerificationCeiling(1, clock=lambda: now[0])
    assert ceiling.take() is None
    now[0] = 0.5
    assert ceiling.take() == 1
    now[0] = 1.0
    assert ceiling.take() is None


def test_giving_back_returns_exactly_one_token() -> None:
    ceiling = VerificationCeiling(3, clock=lambda: 0.0)
    assert [ceiling.take() for _ in range(3)] == [None, None, None]
    ceiling.give_back()
    assert ceiling.take() is None
    assert ceiling.take() == 1
