"""``KEYLEDGER_AUTH_CACHE_SIZE``: each web process keeps at most that many key pairs in
memory (records, verified secrets, rate-limit leases, rendered ``GET /v1/``), least
recently used dropped first. With more keys in use than it holds, every decision
stays the one a large cache makes, and revocation stays in effect for keys that
were dropped and for keys that are held.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask.testing import FlaskClient

from keyledger import create_app
from keyledger.bootstrap import Container, build
from keyledger.config import ConfigError, Settings
from keyledger.domain.events import OPERATOR
from keyledger.domain.tokens import KeyKind, generate
from tests.integration.conftest import unlimited
from tests.integration.helpers import Bootstrapped, bootstrap

SIZE = 3
KEYS = 6


@pytest.fixture
def small(settings: Settings, redis_client: Any) -> Container:
    return build(dataclasses.replace(unlimited(settings), auth_cache_size=SIZE))


@pytest.fixture
def large(settings: Settings) -> Container:
    return build(unlimited(settings))


@pytest.fixture
def secrets(small: Container, projector: Any) -> tuple[Bootstrapped, list[str]]:
    """An account with KEYS secret keys (its owner's first)."""
    owner = bootstrap(small)
    created = [owner.secret_key]
    for n in range(1, KEYS):
        secret, _ = small.ledger.create_secret_key(
            owner.account_id, f"extra-key-{n:04d}", owner.owner_id, (), OPERATOR
        )
        created.append(secret)
    return owner, created


def client_of(container: Container) -> FlaskClient:
    assert container.auth_cache.wait_until_subscribed()
    return create_app({"container": container, "TESTING": True}).test_client()


def decide(container: Container, account_key: str, secret: str, source: str = "127.0.0.1") -> Any:
    result = container.authenticator.authenticate(
        method="GET", path="/v1/", source_ip=source, account_key=account_key, secret_key=secret
    )
    return result.allowed, result.decision.policy, result.decision.status


def sizes(container: Container, client: FlaskClient) -> dict[str, int]:
    app = client.application
    return {
        "records": len(container.auth_cache),
        "verified secrets": len(container.hasher._verified),  # no public size on KeyHasher
        "leases": len(app.extensions["keyledger.gate"].limiter._leases),
        "bodies": len(app.extensions["keyledger.whoami"]),
    }


def test_the_setting_is_read_and_checked() -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:6379/0"}
    assert Settings.from_env(env).auth_cache_size == 100_000
    assert Settings.from_env({**env, "KEYLEDGER_AUTH_CACHE_SIZE": "5000"}).auth_cache_size == 5000
    for bad in ("0", "-1", "many"):
        with pytest.raises(ConfigError, match=r"KEYLEDGER_AUTH_CACHE_SIZE|bad setting"):
            Settings.from_env({**env, "KEYLEDGER_AUTH_CACHE_SIZE": bad})


def test_more_keys_in_use_than_the_cache_holds_stay_served_within_the_bound(
    small: Container, secrets: tuple[Bootstrapped, list[str]]
) -> None:
    owner, created = secrets
    small = build(dataclasses.replace(small.settings, rate_limit_per_minute=10**6))
    client = client_of(small)
    for _ in range(3):
        for secret in created:
            headers = {"x-api-key": owner.account_key, "x-api-secret-key": secret}
            assert client.get("/v1/", headers=headers).status_code == 200
            held = sizes(small, client)
            assert held["verified secrets"] <= 2 * SIZE  # a pair is two keys
            assert all(held[name] <= SIZE for name in ("records", "leases", "bodies"))
    held = sizes(small, client)
    assert held == {"records": SIZE, "verified secrets": 2 * SIZE, "leases": 1, "bodies": SIZE}


def test_the_least_recently_used_pair_is_dropped_first(
    small: Container, secrets: tuple[Bootstrapped, list[str]]
) -> None:
    owner, created = secrets
    assert small.auth_cache.wait_until_subscribed()
    first, *others = created[:SIZE]
    for secret in created[:SIZE]:
        decide(small, owner.account_key, secret)
    decide(small, owner.account_key, first)  # used again: now the most recent
    argon2 = small.hasher.argon2_verifications
    decide(small, owner.account_key, created[SIZE])  # one more: drops others[0], not first
    assert small.hasher.argon2_verifications == argon2 + 1
    misses = small.auth_cache.misses
    decide(small, owner.account_key, first)
    assert small.auth_cache.misses == misses
    decide(small, owner.account_key, others[0])
    assert small.auth_cache.misses == misses + 1


def test_evicted_and_cached_keys_get_the_decisions_a_large_cache_gives(
    small: Container, large: Container, secrets: tuple[Bootstrapped, list[str]]
) -> None:
    owner, created = secrets
    assert small.auth_cache.wait_until_subscribed() and large.auth_cache.wait_until_subscribed()
    wrong = generate(KeyKind.SECRET, 0).token
    asks = [(owner.account_key, s) for s in created] + [(owner.account_key, wrong)]
    asks += [(generate(KeyKind.ACCOUNT, 0).token, created[0])]
    for _ in range(3):
        for account_key, secret in asks:
            assert decide(small, account_key, secret) == decide(large, account_key, secret)
    # A subnet rule on a key that is held and on one that was dropped.
    small.ledger.allow_subnet(owner.account_id, "extra-key-0001", "10.0.0.0/8", OPERATOR)
    for _ in range(2):
        for account_key, secret in asks:
            assert decide(small, account_key, secret) == decide(large, account_key, secret)
        assert decide(small, owner.account_key, created[1])[0] is False
        assert decide(small, owner.account_key, created[1], "10.1.1.1")[0] is True


def test_revocation_holds_for_dropped_and_for_held_keys(
    small: Container, secrets: tuple[Bootstrapped, list[str]]
) -> None:
    owner, created = secrets
    assert small.auth_cache.wait_until_subscribed()
    for secret in created:  # the last SIZE are held now, the first ones were dropped
        assert decide(small, owner.account_key, secret)[0]
    dropped, held = created[0], created[-1]
    assert (owner.account_key[5:21], held[5:21]) in small.auth_cache._entries
    assert (owner.account_key[5:21], dropped[5:21]) not in small.auth_cache._entries
    small.ledger.delete_secret_key(owner.account_id, "extra-key-0001", OPERATOR)
    small.ledger.delete_secret_key(owner.account_id, f"extra-key-{KEYS - 1:04d}", OPERATOR)
    assert decide(small, owner.account_key, created[1])[0] is False  # dropped, then deleted
    assert decide(small, owner.account_key, held)[0] is False  # held, then deleted
    assert decide(small, owner.account_key, created[2])[0] is True
    small.ledger.disable_api(owner.account_id, OPERATOR)
    assert not any(decide(small, owner.account_key, s)[0] for s in created)
