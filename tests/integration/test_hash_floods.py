"""Anyone could make the server burn hashing time; now failures are bounded (issue 7, finding 3).

Well-formed keys are easy to make (the checksum is no secret) and every refusal
of one costs an argon2 verification. The review flooded ``GET /v1/`` from 240
IPv6 /64s: a legitimate request's median went from 4 ms to 107 ms and no 429
was ever returned. These tests run on a real Redis; two containers built on the
same namespace are two web processes (each has its own memory, hasher and
ceiling). Every forged key here has a valid checksum (``forge``), so each one
really reaches the lookup and the hashing it is meant to cost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.adapters.failures import SharedFailureCounts
from keyledger.adapters.redis_client import connect
from keyledger.authn.throttle import Subject, Tally, Throttle, ThrottleLimits
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from keyledger.domain.events import OPERATOR
from tests.e2e.harness import forge, key_id_of
from tests.integration.helpers import Bootstrapped

LIMITS = ThrottleLimits(
    failures_per_source=3,
    failures_per_source_and_key=100,
    failures_per_network=1000,
    failed_verifications_per_second=0,
)


class CountedSharedFailures(SharedFailureCounts):
    """The real Redis counts, remembering how often they were asked."""

    def __init__(self, client: redis.Redis, container: Container):
        super().__init__(client, container.keyspace)
        self.calls = 0

    def read(self, subject: Subject) -> Tally:
        self.calls += 1
        return super().read(subject)

    def add(self, subject: Subject) -> Tally:
        self.calls += 1
        return super().add(subject)


@dataclass
class Process:
    """One web process: its container (hasher, ceiling, memory) and an app on it."""

    container: Container
    client: FlaskClient
    shared: CountedSharedFailures

    @property
    def argon2(self) -> int:
        return self.container.hasher.argon2_verifications


def process(settings: Settings, limits: ThrottleLimits, monotonic: float = 0.0) -> Process:
    container = build(dataclasses.replace(settings, throttle=limits))
    shared = CountedSharedFailures(container.redis, container)
    container.authenticator.throttle = Throttle(limits, shared, monotonic=lambda: monotonic)
    return Process(container, create_app({"container": container}).test_client(), shared)


def get(p: Process, account_key: str, secret_key: str, source: str) -> int:
    return p.client.get(
        "/v1/",
        headers={"x-api-key": account_key, "x-api-secret-key": secret_key},
        environ_overrides={"REMOTE_ADDR": source},
    ).status_code


def wrong_secret(owner: Bootstrapped) -> str:
    return forge("klsk", key_id_of(owner.secret_key))


@pytest.fixture
def two(settings: Settings, owner: Bootstrapped) -> Iterator[tuple[Process, Process]]:
    yield process(settings, LIMITS), process(settings, LIMITS)


# -- shared across processes ---------------------------------------------------------------------
def test_failures_seen_by_one_process_throttle_the_source_in_another(
    two: tuple[Process, Process], owner: Bootstrapped
) -> None:
    a, b = two
    assert [get(a, owner.account_key, wrong_secret(owner), "192.0.2.7") for _ in range(3)] == [
        401
    ] * 3
    before = b.argon2

    assert get(b, owner.account_key, wrong_secret(owner), "192.0.2.7") == 429
    assert b.argon2 == before  # refused before hashing
    assert get(b, owner.account_key, owner.secret_key, "198.51.100.7") == 200  # others are not


def test_failures_alternating_between_processes_add_up(
    two: tuple[Process, Process], owner: Bootstrapped
) -> None:
    a, b = two
    statuses = [get(p, owner.account_key, wrong_secret(owner), "192.0.2.8") for p in (a, b, a, b)]
    assert statuses == [401, 401, 401, 429]


def test_a_network_is_counted_across_processes_and_sources(
    settings: Settings, owner: Bootstrapped
) -> None:
    limits = dataclasses.replace(LIMITS, failures_per_network=4)
    a, b = process(settings, limits), process(settings, limits)
    sources = [f"2001:db8:5:{n}::1" for n in range(5)]  # five /64s of one /48
    statuses = [
        get(p, owner.account_key, wrong_secret(owner), source)
        for p, source in zip((a, b, a, b, a), sources, strict=True)
    ]
    assert statuses == [401, 401, 401, 401, 429]
    assert get(b, owner.account_key, wrong_secret(owner), "2001:db8:6::1") == 401


def test_a_throttled_source_is_refused_without_asking_redis_again(
    two: tuple[Process, Process], owner: Bootstrapped
) -> None:
    a, b = two
    for _ in range(3):
        get(a, owner.account_key, wrong_secret(owner), "192.0.2.9")
    assert get(b, owner.account_key, wrong_secret(owner), "192.0.2.9") == 429
    calls = b.shared.calls
    assert [get(b, owner.account_key, wrong_secret(owner), "192.0.2.9") for _ in range(5)] == [
        429
    ] * 5
    assert b.shared.calls == calls


# -- no round trip where no hashing runs -------------------------------------------------------------
def test_a_key_this_process_verified_costs_no_shared_count(
    two: tuple[Process, Process], owner: Bootstrapped
) -> None:
    a, _ = two
    assert get(a, owner.account_key, owner.secret_key, "192.0.2.10") == 200  # verifies: a read
    calls, argon2 = a.shared.calls, a.argon2
    for _ in range(20):
        assert get(a, owner.account_key, owner.secret_key, "192.0.2.10") == 200
    assert (a.shared.calls, a.argon2) == (calls, argon2)


def test_malformed_keys_are_counted_in_memory_only(
    two: tuple[Process, Process], owner: Bootstrapped
) -> None:
    a, b = two
    broken = owner.secret_key[:-1] + ("A" if owner.secret_key[-1] != "A" else "B")
    assert [get(a, owner.account_key, broken, "192.0.2.11") for _ in range(4)] == [
        401,
        401,
        401,
        429,
    ]
    assert a.shared.calls == 0
    assert get(b, owner.account_key, broken, "192.0.2.11") == 401  # b never heard of them


def test_with_redis_down_the_shared_count_fails_closed_with_503(
    settings: Settings, owner: Bootstrapped
) -> None:
    p = process(settings, LIMITS)
    assert get(p, owner.account_key, owner.secret_key, "192.0.2.12") == 200  # warm
    assert get(p, owner.account_key, wrong_secret(owner), "192.0.2.12") == 401  # records cached
    dead = connect("redis://127.0.0.1:1/0", timeout=0.2)
    p.container.authenticator.throttle = Throttle(
        LIMITS, SharedFailureCounts(dead, p.container.keyspace)
    )

    assert get(p, owner.account_key, wrong_secret(owner), "192.0.2.12") == 503
    assert get(p, owner.account_key, owner.secret_key, "192.0.2.12") == 200  # warm: no Redis


# -- the flood ---------------------------------------------------------------------------------------
def flood_keys(owner: Bootstrapped, n: int) -> tuple[str, str]:
    """Forged pairs with valid checksums: a wrong secret for a real key id, an unknown key
    id (decoy hashing) and an unknown account key, in turn."""
    return [
        (owner.account_key, wrong_secret(owner)),
        (owner.account_key, forge("klsk")),
        (forge("klak"), forge("klsk")),
    ][n % 3]


def test_a_flood_from_many_networks_gets_429_while_a_warm_key_keeps_its_200(
    settings: Settings, owner: Bootstrapped
) -> None:
    ceiling = 4
    limits = ThrottleLimits(failed_verifications_per_second=ceiling)  # the defaults otherwise
    now = [0.0]
    p = process(settings, limits)
    p.container.authenticator.throttle.ceiling.clock = lambda: now[0]
    assert get(p, owner.account_key, owner.secret_key, "198.51.100.1") == 200  # warmed
    argon2 = p.argon2

    flood, legit = [], []
    for n in range(120):  # 120 sources in 120 networks: no per-source or per-network limit
        flood.append(get(p, *flood_keys(owner, n), f"10.{n}.0.1"))
        if n % 10 == 0:
            legit.append(get(p, owner.account_key, owner.secret_key, "198.51.100.1"))

    assert legit == [200] * 12
    assert flood == [401] * ceiling + [429] * (120 - ceiling)
    assert p.argon2 - argon2 == ceiling  # the hashing the flood cost, and no more

    now[0] += 1.0  # a second later: the ceiling lets as many through again
    assert [get(p, *flood_keys(owner, n), f"10.{n}.1.1") for n in range(6)] == [401] * ceiling + [
        429
    ] * 2
    assert p.argon2 - argon2 == 2 * ceiling


def test_past_the_ceiling_a_429_says_when_to_retry(settings: Settings, owner: Bootstrapped) -> None:
    p = process(settings, ThrottleLimits(failed_verifications_per_second=1))
    p.container.authenticator.throttle.ceiling.clock = lambda: 0.0
    assert get(p, *flood_keys(owner, 0), "10.0.0.1") == 401
    response = p.client.get(
        "/v1/",
        headers=dict(zip(("x-api-key", "x-api-secret-key"), flood_keys(owner, 1), strict=True)),
        environ_overrides={"REMOTE_ADDR": "10.1.0.1"},
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.get_json()["error"]["code"] == "too_many_requests"


def test_a_first_verification_of_a_real_key_passes_while_the_ceiling_has_room(
    settings: Settings, container: Container, owner: Bootstrapped
) -> None:
    """Successes give their token back: first verifications of real keys are no failures."""
    cold = [
        container.ledger.create_secret_key(
            owner.account_id, f"cold-start-key-{n}", owner.owner_id, (), OPERATOR
        )[0]
        for n in range(4)
    ]
    p = process(settings, ThrottleLimits(failed_verifications_per_second=1))
    p.container.authenticator.throttle.ceiling.clock = lambda: 0.0
    for n, secret in enumerate(cold[:3]):
        assert get(p, owner.account_key, secret, f"10.{n}.0.1") == 200
    assert get(p, *flood_keys(owner, 0), "10.9.0.1") == 401  # the one failure allowed
    assert get(p, owner.account_key, cold[3], "10.10.0.1") == 429  # a fresh key must wait
    assert get(p, owner.account_key, cold[0], "10.10.0.1") == 200  # a verified one need not
